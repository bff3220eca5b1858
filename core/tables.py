"""Table Storage adapter plumbing: one async service client, table names, storage errors.

In Azure the service reaches its tables by endpoint + Entra credential (no shared keys);
locally by an Azurite connection string.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

from azure.core import MatchConditions
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import EdmType, EntityProperty, UpdateMode
from azure.data.tables.aio import TableClient, TableServiceClient

from core.errors import StorageUnavailable
from core.identity import service_credential
from core.settings import Settings

TABLES = (
    "keys", "keyindex", "deployments", "audit", "teams", "quota", "balances", "usage", "usageagg", "meterhours",
    "meterledger", "ratebudget", "overrides", "refusals",
)
_SAFE_KEY = re.compile(r"^[A-Za-z0-9_.=@:-]{1,120}$")


def table_name(settings: Settings, logical: str) -> str:
    return f"{settings.table_prefix}{logical}"


class Tables:
    """Owns the async TableServiceClient and hands out per-table clients."""

    def __init__(
        self, settings: Settings, *, credential: AsyncTokenCredential | None = None, **client_options: Any
    ) -> None:
        self._settings = settings
        self._owned_credential: AsyncTokenCredential | None = None
        # aiohttp's trust_env reads ~/.netrc and the proxy variables in a worker thread on every
        # request; under load those threads take the GIL from the event loop (seen in py-spy).
        client_options.setdefault("use_env_settings", False)
        if settings.storage_connection_string is not None:
            self.service = TableServiceClient.from_connection_string(
                settings.storage_connection_string.get_secret_value(), **client_options
            )
        elif settings.storage_table_endpoint:
            if credential is None:
                credential = self._owned_credential = service_credential(settings)
            self.service = TableServiceClient(
                endpoint=settings.storage_table_endpoint, credential=credential, **client_options
            )
        else:
            raise ValueError(
                "Set LIUTONG_STORAGE_CONNECTION_STRING (local) or LIUTONG_STORAGE_TABLE_ENDPOINT (Azure)."
            )
        self._clients: dict[str, TableClient] = {}

    def table(self, logical: str) -> TableClient:
        if logical not in self._clients:
            self._clients[logical] = self.service.get_table_client(table_name(self._settings, logical))
        return self._clients[logical]

    async def ensure_tables(self) -> None:
        with storage_errors():
            for logical in TABLES:
                await self.service.create_table_if_not_exists(table_name(self._settings, logical))

    async def ping(self) -> None:
        """One cheap authenticated round trip; raises StorageUnavailable when it fails."""
        with storage_errors():
            async for _ in self.table("deployments").query_entities("PartitionKey eq '~'", results_per_page=1):
                break

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        await self.service.close()
        if self._owned_credential is not None:
            await self._owned_credential.close()


@contextlib.contextmanager
def storage_errors() -> Iterator[None]:
    """Turn transport/service failures into StorageUnavailable; let expected ones through."""
    try:
        yield
    except (ResourceNotFoundError, ResourceExistsError, ResourceModifiedError):
        raise
    except (AzureError, OSError, TimeoutError) as error:
        reason = "authentication" if isinstance(error, ClientAuthenticationError) else type(error).__name__
        raise StorageUnavailable(f"Storage is unavailable ({reason}).") from error


def table_key(text: str) -> str:
    """A Table key component: the text itself when it is plainly safe, else a hash of it."""
    if _SAFE_KEY.match(text) and "|" not in text:
        return text
    return "h" + hashlib.sha256(text.encode()).hexdigest()[:40]


def int_value(value: Any) -> int:
    """Table Storage returns Int64 properties wrapped in EntityProperty."""
    if isinstance(value, EntityProperty):
        value = value.value
    return int(value or 0)


def int64(value: int) -> EntityProperty:
    """Plain ints are stored as Int32 and overflow at 2^31."""
    return EntityProperty(value, EdmType.INT64)


async def write_if_unchanged(table: TableClient, entity: dict[str, Any], etag: str | None) -> str | None:
    """Creates the entity (etag None: it was read as absent) or replaces it if it still has `etag`.

    Its new ETag, or None when another writer got there first: the caller re-reads and decides again.
    """
    try:
        with storage_errors():
            if etag is None:
                meta = await table.create_entity(entity)
            else:
                meta = await table.update_entity(
                    entity, mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
                )
    except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
        return None
    return str(meta["etag"])


async def rows_of(
    table: TableClient, query: str, params: dict[str, Any], select: list[str] | None = None, **options: Any
) -> AsyncIterator[Any]:
    """A query's rows; none while the table does not exist (a dry run creates nothing)."""
    with storage_errors():
        try:
            async for row in table.query_entities(query, parameters=params, select=select, **options):
                yield row
        except ResourceNotFoundError:
            return
