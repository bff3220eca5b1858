"""Which teams brought their own provider credential (BYOK) for which upstream alias: metadata only.

Table `byok`: PartitionKey = team, RowKey = table_key(alias); properties alias, secret_name, last4, created_at,
created_by (operator oid). Never the credential: that lives in Key Vault under `secret_name` (proxy.byok_vault).
Each registration gets a new secret name (`byok-<sha256(team, alias)[:32]>-<random>`), so a secret value read
once can be cached for good, and a re-registration after a removal never meets Key Vault's soft-deleted secret
of the same name. The table is created on first write: most services never hold a row.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from core.tables import Tables, rows_of, storage_errors, table_key
from keystore.entities import plain_utc

TABLE = "byok"
SECRET_PREFIX = "byok-"  # noqa: S105 - a name prefix, not a secret


@dataclass(frozen=True)
class ByokEntry:
    team: str
    alias: str
    secret_name: str
    last4: str
    created_at: datetime
    created_by: str | None = None


def new_secret_name(team: str, alias: str) -> str:
    """A Key Vault secret name ([0-9a-zA-Z-], at most 127 characters) for a new registration."""
    digest = hashlib.sha256(f"{team}\n{alias}".encode()).hexdigest()[:32]
    return f"{SECRET_PREFIX}{digest}-{secrets.token_hex(4)}"


def last4(credential: str) -> str:
    return credential[-4:]


class ByokStore:
    def __init__(self, tables: Tables) -> None:
        self._table = tables.table(TABLE)
        self._service = tables.service
        self._table_name = self._table.table_name
        self._created = False

    async def for_team(self, team: str) -> dict[str, ByokEntry]:
        """The team's registrations by alias (one partition read)."""
        rows = rows_of(self._table, "PartitionKey eq @team", {"team": team})
        return {entry.alias: entry async for entry in _entries(rows)}

    async def get(self, team: str, alias: str) -> ByokEntry | None:
        with storage_errors():
            try:
                entity = await self._table.get_entity(team, table_key(alias))
            except ResourceNotFoundError:
                return None
        return _from_entity(entity)

    async def put(self, entry: ByokEntry) -> None:
        await self._ensure_table()
        with storage_errors():
            await self._table.upsert_entity(_to_entity(entry), mode=UpdateMode.REPLACE)

    async def delete(self, team: str, alias: str) -> None:
        with storage_errors():
            try:
                await self._table.delete_entity(team, table_key(alias))
            except ResourceNotFoundError:
                return

    async def _ensure_table(self) -> None:
        if self._created:
            return
        with storage_errors(), contextlib.suppress(ResourceExistsError):
            await self._service.create_table(self._table_name)
        self._created = True


async def _entries(rows: Any) -> Any:
    async for row in rows:
        yield _from_entity(row)


def _to_entity(entry: ByokEntry) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": entry.team, "RowKey": table_key(entry.alias), "alias": entry.alias,
        "secret_name": entry.secret_name, "last4": entry.last4, "created_at": entry.created_at,
    }
    if entry.created_by is not None:
        entity["created_by"] = entry.created_by
    return entity


def _from_entity(entity: Any) -> ByokEntry:
    return ByokEntry(
        team=entity["PartitionKey"], alias=entity["alias"], secret_name=entity["secret_name"],
        last4=entity["last4"], created_at=plain_utc(entity["created_at"]), created_by=entity.get("created_by"),
    )
