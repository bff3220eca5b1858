"""Fixtures of the keystore tests: records, a repository on Azurite, a Key Vault stand-in."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.core.credentials import AccessToken

from core.tables import Tables
from keystore.keys import display_prefix, generate_key, hash_key, random_key_id
from keystore.models import KeyRecord, KeyStatus
from keystore.repository import KeyRepository
from localdev.keyvault_standin import KeyVaultStandIn

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
DEPLOYMENT = "ab" * 32


def make_record(key: str | None = None, **overrides: Any) -> tuple[str, KeyRecord]:
    key = key or generate_key()
    values: dict[str, Any] = {
        "key_hash": hash_key(key),
        "key_id": random_key_id(),
        "prefix": display_prefix(key),
        "team": "team-a",
        "description": "test key",
        "status": KeyStatus.ACTIVE,
        "created_at": NOW,
    }
    values.update(overrides)
    return key, KeyRecord(**values)


@pytest.fixture
def repository(tables: Tables) -> KeyRepository:
    return KeyRepository(tables)


class FakeCredential:
    """Stands in for an Entra credential; the vault stand-in accepts any non-empty token."""

    def __init__(self, *, fail: Exception | None = None) -> None:
        self.fail = fail
        self.scopes: list[str] = []

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        if self.fail is not None:
            raise self.fail
        self.scopes.extend(scopes)
        return AccessToken("fake-token", int(time.time()) + 3600)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> FakeCredential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


@pytest.fixture(scope="module")
def vault() -> Iterator[KeyVaultStandIn]:
    with KeyVaultStandIn() as standin:
        yield standin
