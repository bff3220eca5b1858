"""arm_credential end to end: the secret from the Key Vault stand-in, a real token from the Entra stand-in via msal."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError

from core.settings import Settings
from localdev.keyvault_standin import KeyVaultStandIn
from localdev.standin import RunningStandin, start_in_thread
from provisioning.credentials import _instance_discovery, arm_credential

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_ID = "4a8f2c1e-6b3d-4e5f-9a7b-1c2d3e4f5a6b"
SECRET = "arm-secret-value-Q~7yX.not-a-real-one"
SECRET_NAME = "arm-client-secret"
ARM = "https://management.azure.com"


class FakeServiceCredential:
    """The service's managed identity, as far as the Key Vault stand-in cares: any bearer token."""

    def __init__(self) -> None:
        self.scopes: list[str] = []

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.extend(scopes)
        return AccessToken("fake-managed-identity-token", int(time.time()) + 3600)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> FakeServiceCredential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


@pytest.fixture(scope="module")
def entra() -> Iterator[RunningStandin]:
    with start_in_thread(tls=True) as running:
        yield running


@pytest.fixture(scope="module")
def object_id(entra: RunningStandin) -> str:
    return entra.state.register_app_registration(client_id=CLIENT_ID, secret=SECRET, tenant_id=TENANT)


@pytest.fixture(scope="module")
def vault() -> Iterator[KeyVaultStandIn]:
    with KeyVaultStandIn() as standin:
        standin.set_secret(SECRET_NAME, SECRET)
        yield standin


def msal_settings(entra: RunningStandin, vault: KeyVaultStandIn, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "arm_credential": "msal",
        "arm_tenant_id": TENANT,
        "arm_client_id": CLIENT_ID,
        "arm_client_secret_name": SECRET_NAME,
        "key_vault_url": vault.url,
        "entra_authority": entra.base_url,
    }
    return Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]


async def credential_for(entra: RunningStandin, vault: KeyVaultStandIn, service: Any, **overrides: Any) -> Any:
    return await arm_credential(
        msal_settings(entra, vault, **overrides),
        service=service,
        secret_client_kwargs={"connection_verify": str(vault.ca_path), "verify_challenge_resource": False},
        msal_verify=str(entra.ca_path),
    )


def verified_claims(entra: RunningStandin, token: str) -> dict[str, Any]:
    """Checks the signature the way a resource would: metadata, then its jwks_uri."""
    with httpx.Client(verify=ssl.create_default_context(cafile=entra.ca_path)) as http:
        metadata = http.get(f"{entra.base_url}/{TENANT}/v2.0/.well-known/openid-configuration").json()
        assert metadata["token_endpoint"] == f"{entra.base_url}/{TENANT}/oauth2/v2.0/token"
        keys = jwt.PyJWKSet.from_dict(http.get(metadata["jwks_uri"]).json())
    key = keys[jwt.get_unverified_header(token)["kid"]]
    return dict(jwt.decode(token, key, algorithms=["RS256"], audience=ARM))


async def test_msal_gets_an_arm_token_with_the_secret_from_key_vault(
    entra: RunningStandin, vault: KeyVaultStandIn, object_id: str
) -> None:
    service = FakeServiceCredential()
    async with await credential_for(entra, vault, service) as credential:
        token = await credential.get_token(f"{ARM}/.default")
        # msal's cache answers the second time.
        assert (await credential.get_token(f"{ARM}/.default")).token == token.token

    claims = verified_claims(entra, token.token)
    assert (claims["tid"], claims["oid"], claims["appid"]) == (TENANT, object_id, CLIENT_ID)
    assert (claims["iss"], claims["ver"], claims["idtyp"]) == (entra.state.v1_issuer(TENANT), "1.0", "app")
    assert token.expires_on > time.time() + 3000
    assert service.scopes == ["https://vault.azure.net/.default"]
    assert "fake-managed-identity-token" in vault.tokens_seen


@pytest.mark.parametrize(
    ("secret_name", "client_id", "expected"),
    [
        ("wrong-secret", CLIENT_ID, "invalid_client: AADSTS7000215"),
        (SECRET_NAME, "0f0f0f0f-0000-4000-8000-000000000000", "unauthorized_client: AADSTS700016"),
    ],
)
async def test_rejected_client_raises_without_the_secret(
    entra: RunningStandin, vault: KeyVaultStandIn, object_id: str, secret_name: str, client_id: str, expected: str
) -> None:
    wrong = "wrong-secret-value-Q~0000"
    vault.set_secret("wrong-secret", wrong)
    credential = await credential_for(
        entra, vault, FakeServiceCredential(), arm_client_secret_name=secret_name, arm_client_id=client_id
    )
    async with credential:
        with pytest.raises(ClientAuthenticationError) as raised:
            await credential.get_token(f"{ARM}/.default")
    message = str(raised.value)
    assert expected in message
    assert SECRET not in message and wrong not in message


@pytest.mark.parametrize(
    "missing",
    [{"arm_tenant_id": None}, {"arm_client_id": None}, {"arm_client_secret_name": None}, {"key_vault_url": None}],
)
async def test_msal_needs_its_settings(entra: RunningStandin, vault: KeyVaultStandIn, missing: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="arm_credential=msal"):
        await arm_credential(msal_settings(entra, vault, **missing), service=FakeServiceCredential())


async def test_empty_secret_is_refused(entra: RunningStandin, vault: KeyVaultStandIn) -> None:
    vault.set_secret("empty-secret", "")
    with pytest.raises(ValueError, match="empty"):
        await credential_for(entra, vault, FakeServiceCredential(), arm_client_secret_name="empty-secret")


async def test_managed_identity_is_the_default() -> None:
    service = FakeServiceCredential()
    settings = Settings(_env_file=None, arm_credential="managed_identity")  # type: ignore[call-arg]
    assert await arm_credential(settings, service=service) is service


def test_instance_discovery_stays_on_for_entra_hosts_only() -> None:
    assert _instance_discovery(f"https://login.microsoftonline.com/{TENANT}") is None
    assert _instance_discovery(f"https://login.microsoftonline.us/{TENANT}") is None
    assert _instance_discovery(f"https://127.0.0.1:8443/{TENANT}") is False
