from collections.abc import Callable
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError

from core.errors import ServiceUnavailable
from core.settings import Settings
from keystore.keys import derive_key
from keystore.master_secret import (
    KeyVaultMasterSecret,
    MasterSecret,
    SettingMasterSecret,
    master_secret_provider,
)
from localdev.azurite import free_port
from localdev.keyvault_standin import KeyVaultStandIn
from tests.keystore.conftest import FakeCredential

SECRET_A = "a-master-secret-of-at-least-32-chars!"
SECRET_B = "another-master-secret-of-32+-characters"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def kv_provider(vault: KeyVaultStandIn, name: str, **kwargs: Any) -> KeyVaultMasterSecret:
    kwargs.setdefault("credential", FakeCredential())
    return KeyVaultMasterSecret(
        vault_url=vault.url,
        secret_name=name,
        connection_verify=str(vault.ca_path),
        verify_challenge_resource=False,
        **kwargs,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_setting_version_follows_the_value() -> None:
    a, a_again = SettingMasterSecret(SECRET_A), SettingMasterSecret(SECRET_A)
    b = SettingMasterSecret(SECRET_B)
    current = await a.current()
    assert current == await a_again.current()
    assert current.value == SECRET_A.encode()
    assert current.version.startswith("s") and len(current.version) == 13
    assert current.version != (await b.current()).version
    assert await a.get(current.version) == current
    assert await a.get((await b.current()).version) is None


def test_setting_secret_must_be_long_and_repr_hides_it() -> None:
    with pytest.raises(ValueError) as raised:
        SettingMasterSecret("short")
    assert "short" not in str(raised.value)
    secret = MasterSecret(version="v1", value=SECRET_A.encode())
    assert SECRET_A not in repr(secret) and "v1" in repr(secret)


async def test_provider_selection(make_settings: Callable[..., Settings], vault: KeyVaultStandIn) -> None:
    provider = master_secret_provider(make_settings(), credential=None)
    assert isinstance(provider, SettingMasterSecret)
    kv = master_secret_provider(
        make_settings(key_vault_url=vault.url),
        credential=FakeCredential(),
        connection_verify=str(vault.ca_path),
    )
    assert isinstance(kv, KeyVaultMasterSecret)
    await kv.close()
    with pytest.raises(ValueError):
        master_secret_provider(make_settings(key_vault_url=vault.url), credential=None)
    with pytest.raises(ValueError):
        master_secret_provider(make_settings(master_secret=None), credential=None)


async def test_key_vault_current_and_by_version(vault: KeyVaultStandIn) -> None:
    version = vault.set_secret("master-current", SECRET_A)
    credential = FakeCredential()
    provider = kv_provider(vault, "master-current", credential=credential)
    try:
        current = await provider.current()
        assert current == MasterSecret(version=version, value=SECRET_A.encode())
        assert await provider.get(version) == current
        assert credential.scopes == ["https://vault.azure.net/.default"]
        assert "fake-token" in vault.tokens_seen and vault.challenges_sent >= 1
        # The derivation works with the fetched secret.
        assert derive_key(current.value, application_id="app", generation=0).startswith("lt-")
    finally:
        await provider.close()


async def test_key_vault_rotation(vault: KeyVaultStandIn, clock: Clock) -> None:
    old = vault.set_secret("master-rotate", SECRET_A)
    provider = kv_provider(vault, "master-rotate", cache_seconds=300, clock=clock)
    try:
        assert (await provider.current()).version == old
        new = vault.set_secret("master-rotate", SECRET_B)
        assert (await provider.current()).version == old  # cached until cache_seconds pass
        clock.now += 301
        current = await provider.current()
        assert current == MasterSecret(version=new, value=SECRET_B.encode())
        previous = await provider.get(old)
        assert previous is not None and previous.value == SECRET_A.encode()
    finally:
        await provider.close()


async def test_key_vault_missing_or_disabled_version_is_none(vault: KeyVaultStandIn) -> None:
    old = vault.set_secret("master-disable", SECRET_A)
    vault.set_secret("master-disable", SECRET_B)
    vault.disable("master-disable", old)
    provider = kv_provider(vault, "master-disable")
    try:
        assert await provider.get(old) is None
        assert await provider.get("0" * 32) is None
        assert (await provider.current()).value == SECRET_B.encode()
    finally:
        await provider.close()


async def test_key_vault_missing_or_disabled_current_is_unavailable(vault: KeyVaultStandIn) -> None:
    provider = kv_provider(vault, "master-absent")
    try:
        with pytest.raises(ServiceUnavailable):
            await provider.current()
        version = vault.set_secret("master-absent", SECRET_A)
        vault.disable("master-absent", version)
        with pytest.raises(ServiceUnavailable):
            await provider.current()
    finally:
        await provider.close()


async def test_key_vault_auth_failure_is_unavailable(vault: KeyVaultStandIn) -> None:
    vault.set_secret("master-auth", SECRET_A)
    credential = FakeCredential(fail=ClientAuthenticationError("no identity"))
    provider = kv_provider(vault, "master-auth", credential=credential)
    try:
        with pytest.raises(ServiceUnavailable) as raised:
            await provider.current()
        assert SECRET_A not in str(raised.value)
    finally:
        await provider.close()


async def test_key_vault_unreachable_is_unavailable() -> None:
    provider = KeyVaultMasterSecret(
        vault_url=f"https://127.0.0.1:{free_port()}",
        secret_name="master",
        credential=FakeCredential(),
        verify_challenge_resource=False,
        retry_total=0,
    )
    try:
        with pytest.raises(ServiceUnavailable):
            await provider.current()
        with pytest.raises(ServiceUnavailable):
            await provider.get("0" * 32)
    finally:
        await provider.close()


async def test_key_vault_certificate_is_verified(vault: KeyVaultStandIn) -> None:
    vault.set_secret("master-tls", SECRET_A)
    untrusting = KeyVaultMasterSecret(
        vault_url=vault.url,
        secret_name="master-tls",
        credential=FakeCredential(),
        verify_challenge_resource=False,
        retry_total=0,
    )
    try:
        with pytest.raises(ServiceUnavailable):
            await untrusting.current()
    finally:
        await untrusting.close()
