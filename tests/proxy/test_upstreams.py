"""The upstreams file, the URLs and credentials built from it, and what upstream errors may say."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError
from pydantic import ValidationError

from core.errors import UpstreamUnavailable
from core.settings import Settings
from localdev.keyvault_standin import KeyVaultStandIn
from localdev.mock_upstream import upstreams_config
from proxy.registry import CHAT, EMBEDDINGS, UpstreamRegistry
from proxy.upstream_auth import ApiKeyAuth, EntraTokenAuth, KeyVaultSecrets
from proxy.upstream_errors import from_status, scrub
from proxy.upstreams import UpstreamsConfig
from tests.proxy.fakes import FakeCredential

SAMPLE = Path(__file__).resolve().parents[2] / "config" / "upstreams.json"
OPENAI = {"kind": "openai", "base_url": "https://api.example.com/v1", "model": "m"}


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_sample_file_is_valid_and_names_the_plans_aliases() -> None:
    config = UpstreamsConfig.load(SAMPLE)
    plans = json.loads((SAMPLE.parent / "plans.json").read_text())
    aliases = {alias for plan in plans["plans"] for alias in plan["models"]}
    assert aliases <= set(config.models)


@pytest.mark.parametrize(
    "upstream",
    [
        {**OPENAI, "extra": 1},
        {**OPENAI, "base_url": "not a url"},
        {**OPENAI, "base_url": "http://api.example.com/v1"},
        {**OPENAI, "base_url": "https://user:pw@api.example.com/v1"},
        {**OPENAI, "base_url": "https://api.example.com/v1?key=x"},
        {**OPENAI, "credential": {"type": "key_vault_secret"}},
        {**OPENAI, "credential": {"type": "api_key", "value": "sk-x"}},
        {**OPENAI, "timeouts": {"read_seconds": 0}},
        {"kind": "azure_openai", "endpoint": "https://x.openai.azure.com", "deployment": "d", "api_version": "latest"},
        {"kind": "azure_openai", "endpoint": "https://x.openai.azure.com", "deployment": "d/../e",
         "api_version": "2024-10-21"},
        {"kind": "anthropic", "base_url": "https://api.example.com"},
    ],
)
def test_invalid_upstreams_are_refused(upstream: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        UpstreamsConfig.model_validate({"models": {"alias": upstream}})


def test_invalid_alias_and_empty_file_are_refused() -> None:
    with pytest.raises(ValidationError):
        UpstreamsConfig.model_validate({"models": {"bad alias!": OPENAI}})
    with pytest.raises(ValidationError):
        UpstreamsConfig.model_validate({"models": {}})


def test_urls_and_timeouts_per_alias() -> None:
    config = UpstreamsConfig.model_validate({"models": {
        "a": {**OPENAI, "base_url": "https://api.example.com/v1/", "timeouts": {"read_seconds": 7}},
        "z": {"kind": "azure_openai", "endpoint": "https://x.openai.azure.com/", "deployment": "gpt-4o",
              "api_version": "2024-10-21"},
    }})
    registry = UpstreamRegistry(
        config, settings=settings(upstream_connect_timeout_seconds=3), credential=FakeCredential()
    )
    a, z = registry.get("a"), registry.get("z")
    assert a is not None and z is not None
    assert a.urls[CHAT] == "https://api.example.com/v1/chat/completions" and a.model == "m"
    assert (a.timeout.sock_read, a.timeout.sock_connect) == (7, 3)
    assert z.urls[EMBEDDINGS] == "https://x.openai.azure.com/openai/deployments/gpt-4o/embeddings?api-version=2024-10-21"
    assert z.model is None and z.timeout.sock_read == 300


def test_missing_credentials_fail_at_start() -> None:
    azure = {"kind": "azure_openai", "endpoint": "https://x.openai.azure.com", "deployment": "d",
             "api_version": "2024-10-21"}
    with pytest.raises(ValueError, match="credential"):
        UpstreamRegistry(UpstreamsConfig.model_validate({"models": {"z": azure}}), settings=settings())
    keyed = {**OPENAI, "credential": {"type": "key_vault_secret", "secret_name": "k"}}
    with pytest.raises(ValueError, match="KEY_VAULT_URL"):
        UpstreamRegistry(UpstreamsConfig.model_validate({"models": {"k": keyed}}), settings=settings())


def test_local_config_for_the_mock_validates(tmp_path: Path) -> None:
    path = tmp_path / "upstreams.json"
    path.write_text(json.dumps(upstreams_config("http://127.0.0.1:7073")))
    registry = UpstreamRegistry.from_settings(settings(upstreams_file=str(path)), credential=None)
    assert registry.aliases() == ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")


@pytest.fixture(scope="module")
def vault() -> Iterator[KeyVaultStandIn]:
    with KeyVaultStandIn() as standin:
        yield standin


async def test_api_key_from_the_key_vault_stand_in(vault: KeyVaultStandIn, tmp_path: Path) -> None:
    vault.set_secret("openai-key", "sk-from-the-vault-0123456789")
    path = tmp_path / "upstreams.json"
    keyed = {**OPENAI, "credential": {"type": "key_vault_secret", "secret_name": "openai-key"}}
    path.write_text(json.dumps({"models": {"k": keyed, "plain": OPENAI}}))
    registry = UpstreamRegistry.from_settings(
        settings(upstreams_file=str(path), key_vault_url=vault.url), credential=FakeCredential(),
        connection_verify=str(vault.ca_path), verify_challenge_resource=False,
    )
    try:
        target, plain = registry.get("k"), registry.get("plain")
        assert target is not None and plain is not None
        headers = await target.headers(stream=True)
        assert headers["authorization"] == "Bearer sk-from-the-vault-0123456789"
        assert headers["accept"] == "text/event-stream"
        assert "authorization" not in await plain.headers(stream=False)
    finally:
        await registry.close()


async def test_missing_vault_secret_is_an_upstream_credential_error(vault: KeyVaultStandIn) -> None:
    secrets = KeyVaultSecrets(vault_url=vault.url, credential=FakeCredential(),  # type: ignore[arg-type]
                              connection_verify=str(vault.ca_path), verify_challenge_resource=False)
    try:
        with pytest.raises(UpstreamUnavailable) as raised:
            await ApiKeyAuth(secrets, "does-not-exist").headers()
        assert raised.value.code == "upstream_credential"
    finally:
        await secrets.close()


async def test_entra_token_is_cached_until_near_expiry() -> None:
    now = [1000.0]
    credential = FakeCredential(lifetime=0)
    auth = EntraTokenAuth(credential, clock=lambda: now[0])  # type: ignore[arg-type]
    credential.lifetime = 3600
    await auth.headers()
    await auth.headers()
    assert len(credential.scopes) == 1
    now[0] = 1e12  # far past expiry
    await auth.headers()
    assert len(credential.scopes) == 2


async def test_entra_failure_is_a_502() -> None:
    class Failing(FakeCredential):
        async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            raise ClientAuthenticationError("no identity")

    with pytest.raises(UpstreamUnavailable) as raised:
        await EntraTokenAuth(Failing()).headers()  # type: ignore[arg-type]
    assert raised.value.code == "upstream_credential"


def test_upstream_error_messages_never_carry_keys() -> None:
    message = "Incorrect API key provided: sk-proj-abcdef123456. Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.sig"
    assert "sk-proj" not in scrub(message) and "eyJ" not in scrub(message)
    body = json.dumps({"error": {"message": "bad key lt-abcdef0123456789", "type": "x", "code": "y"}}).encode()
    error = from_status(400, body, {})
    assert error.status_code == 400 and "lt-abcdef" not in error.message and error.code == "y"
    assert from_status(404, b"<html>not found</html>", {}).status_code == 502
    assert from_status(429, json.dumps({"error": {"message": "slow"}}).encode(), {"retry-after": "2"}).headers == {
        "retry-after": "2"
    }
