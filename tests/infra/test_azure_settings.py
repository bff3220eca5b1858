"""The settings the Bicep gives the app in Azure, read by the app's own Settings class."""

from __future__ import annotations

import asyncio

import pytest

from core.settings import Settings
from tests.infra.bicep_ast import BICEP_DIR, parse, variable

# Plausible values for the wired settings that are expressions in main.bicep.
RESOLVED = {
    "LIUTONG_STORAGE_TABLE_ENDPOINT": "https://stabc123.table.core.windows.net/",
    "LIUTONG_TABLE_PREFIX": "liutong",
    "LIUTONG_MANAGED_IDENTITY_CLIENT_ID": "11111111-1111-1111-1111-111111111111",
    "LIUTONG_WEBHOOK_SECRET": "0123456789abcdef0123456789abcdef",  # what the Key Vault reference resolves to
    "LIUTONG_KEY_VAULT_URL": "https://kv-abc123.vault.azure.net/",
    "LIUTONG_MASTER_SECRET_NAME": "liutong-key-master",
    "LIUTONG_BYOK_VAULT_URL": "https://kv-byok-abc123.vault.azure.net/",
    "LIUTONG_API_APP_ID_URI": "api://liutong",
    "LIUTONG_API_CLIENT_ID": "6c1f0a0e-5d7b-4f4e-9d55-4c8c0f1a7e21",
}


class _NoCredential:
    """Enough of an AsyncTokenCredential for building a client; never asked for a token here."""

    async def get_token(self, *scopes: str, **kwargs: object) -> object:
        raise AssertionError("no token should be requested")

    async def close(self) -> None:
        return None


def azure_environment() -> dict[str, str]:
    main = parse(BICEP_DIR / "main.bicep")
    environment = dict(variable(main, "tunableSettings"))
    for name, value in variable(main, "wiredSettings").items():
        environment[name] = RESOLVED.get(name, value)
    assert all(isinstance(value, str) for value in environment.values())
    return environment


def test_the_azure_settings_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in azure_environment().items():
        monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.key_vault_url == RESOLVED["LIUTONG_KEY_VAULT_URL"]
    assert settings.audiences == [RESOLVED["LIUTONG_API_APP_ID_URI"], RESOLVED["LIUTONG_API_CLIENT_ID"]]


def test_empty_settings_mean_unset_so_azure_uses_the_table_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    # main.bicep sets LIUTONG_STORAGE_CONNECTION_STRING and LIUTONG_MASTER_SECRET to '' in Azure:
    # the service must read them as unset, and so reach its tables by endpoint + identity.
    from core.tables import Tables

    for name, value in azure_environment().items():
        monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.storage_connection_string is None
    assert settings.master_secret is None
    tables = Tables(settings, credential=_NoCredential())  # type: ignore[arg-type]
    try:
        assert tables.service.url.startswith(RESOLVED["LIUTONG_STORAGE_TABLE_ENDPOINT"].rstrip("/"))
    finally:
        asyncio.run(tables.close())
