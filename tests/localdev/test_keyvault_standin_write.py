"""The Key Vault stand-in's writes, through the real azure-keyvault-secrets client: set, delete, soft delete."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.keyvault.secrets.aio import SecretClient

from core.settings import Settings
from localdev.keyvault_standin import KeyVaultStandIn
from proxy.byok_vault import KeyVaultByok, byok_vault
from tests.keystore.conftest import FakeCredential


@pytest.fixture(scope="module")
def vault() -> Iterator[KeyVaultStandIn]:
    with KeyVaultStandIn() as standin:
        yield standin


@pytest.fixture
async def client(vault: KeyVaultStandIn) -> AsyncIterator[SecretClient]:
    async with SecretClient(
        vault.url, FakeCredential(), connection_verify=str(vault.ca_path), verify_challenge_resource=False
    ) as secret_client:
        yield secret_client


async def test_set_adds_versions_the_latest_is_read(client: SecretClient, vault: KeyVaultStandIn) -> None:
    first = await client.set_secret("written", "one", content_type="text/plain", tags={"team": "a"})
    second = await client.set_secret("written", "two")
    assert first.value == "one" and first.properties.content_type == "text/plain"
    assert first.properties.tags == {"team": "a"}
    assert first.properties.version != second.properties.version
    assert (await client.get_secret("written")).value == "two"
    assert (await client.get_secret("written", first.properties.version)).value == "one"
    assert "written" in vault.names()


async def test_delete_is_soft_and_blocks_the_name_until_purged(client: SecretClient, vault: KeyVaultStandIn) -> None:
    await client.set_secret("doomed", "value-to-delete")
    deleted = await client.delete_secret("doomed", _polling_interval=0)  # type: ignore[call-arg]
    assert deleted.name == "doomed" and deleted.recovery_id is not None and deleted.deleted_date is not None
    with pytest.raises(ResourceNotFoundError):
        await client.get_secret("doomed")
    assert (await client.get_deleted_secret("doomed")).name == "doomed"
    assert "value-to-delete" in vault.values()  # still held while soft-deleted, as Key Vault does
    with pytest.raises(ResourceExistsError):
        await client.set_secret("doomed", "again")
    await client.purge_deleted_secret("doomed")
    assert "value-to-delete" not in vault.values()
    assert (await client.set_secret("doomed", "again")).value == "again"


async def test_missing_and_missing_deleted_secrets_are_not_found(client: SecretClient) -> None:
    with pytest.raises(ResourceNotFoundError):
        await client.delete_secret("never-there")
    with pytest.raises(ResourceNotFoundError):
        await client.get_deleted_secret("never-there")


async def test_the_byok_adapter_sets_reads_and_deletes(vault: KeyVaultStandIn) -> None:
    settings = Settings(_env_file=None, byok_vault_url=vault.url, byok_vault_ca_bundle=str(vault.ca_path))  # type: ignore[call-arg]
    adapter = byok_vault(settings, credential=FakeCredential())  # type: ignore[arg-type]
    assert isinstance(adapter, KeyVaultByok)
    try:
        await adapter.set_secret("byok-adapter", "sk-team-own-0001", tags={"liutong-team": "a"})
        assert await adapter.get_secret("byok-adapter") == "sk-team-own-0001"
        await adapter.delete_secret("byok-adapter")
        await adapter.delete_secret("byok-adapter")  # already gone: fine
        assert "byok-adapter" not in vault.names()
    finally:
        await adapter.close()
    assert byok_vault(Settings(_env_file=None), credential=FakeCredential()) is None  # type: ignore[call-arg,arg-type]
