"""Table Storage adapter for key records.

Table `keys`:     PartitionKey = key_hash[:2], RowKey = key_hash  -> lookup is one point read.
Table `keyindex`: PartitionKey = "dep-<deployment_id>" | "team-<team>", RowKey = key_id,
                  property key_hash -> list an owner's keys without scanning `keys`.

Index rows are written before the key row: an orphan index row is harmless (listing skips it),
an unindexed key could never be listed or revoked by owner.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Callable
from datetime import datetime, timedelta

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from core.errors import Conflict, InvalidRequest, ServiceUnavailable
from core.tables import Tables, storage_errors
from keystore.entities import from_entity, to_entity
from keystore.keys import hash_key, is_key_hash, is_well_formed
from keystore.models import KeyRecord, KeyStatus

KEYS_TABLE = "keys"
INDEX_TABLE = "keyindex"
MAX_CAS_ATTEMPTS = 10

# Characters Table Storage refuses in PartitionKey/RowKey: / \ # ? and control characters.
_KEY_UNSAFE = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")
_MAX_KEY_PART = 255

Change = Callable[[KeyRecord], KeyRecord | None]


def _check_key_part(name: str, value: str) -> None:
    if not value or len(value) > _MAX_KEY_PART or _KEY_UNSAFE.search(value):
        raise InvalidRequest(
            f"{name} is empty, too long or contains / \\ # ? or control characters.", param=name
        )


def owner_partition(*, deployment_id: str | None = None, team: str | None = None) -> str:
    if (deployment_id is None) == (team is None):
        raise ValueError("name exactly one owner: deployment_id or team")
    if deployment_id is not None:
        _check_key_part("deployment_id", deployment_id)
        return f"dep-{deployment_id}"
    assert team is not None
    _check_key_part("team", team)
    return f"team-{team}"


def owner_partitions(record: KeyRecord) -> list[str]:
    owners = []
    if record.deployment_id is not None:
        owners.append(owner_partition(deployment_id=record.deployment_id))
    if record.team:
        owners.append(owner_partition(team=record.team))
    return owners


def _retired(record: KeyRecord, until: datetime) -> KeyRecord | None:
    if record.status is KeyStatus.REVOKED:
        return None
    expires = until if record.expires_at is None else min(record.expires_at, until)
    if record.status is KeyStatus.ROTATING_OUT and expires == record.expires_at:
        return None
    return dataclasses.replace(record, status=KeyStatus.ROTATING_OUT, expires_at=expires)


def _revoked(at: datetime) -> Change:
    def change(record: KeyRecord) -> KeyRecord | None:
        if record.status is KeyStatus.REVOKED:
            return None
        return dataclasses.replace(record, status=KeyStatus.REVOKED, revoked_at=at)

    return change


def _superseded(at: datetime, grace: timedelta | None) -> Change:
    def change(record: KeyRecord) -> KeyRecord | None:
        if record.status is not KeyStatus.ACTIVE:
            return None
        if grace is None:
            return dataclasses.replace(record, status=KeyStatus.REVOKED, revoked_at=at)
        return _retired(record, at + grace)

    return change


def _used(at: datetime) -> Change:
    def change(record: KeyRecord) -> KeyRecord | None:
        if record.last_used_at is not None and record.last_used_at >= at:
            return None
        return dataclasses.replace(record, last_used_at=at)

    return change


class KeyRepository:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables
        self._listeners: list[Callable[[str], None]] = []

    def on_status_change(self, listener: Callable[[str], None]) -> None:
        """`listener(key_hash)` runs after this process revokes or retires a key (e.g. to drop a cached principal)."""
        self._listeners.append(listener)

    @property
    def _keys(self) -> TableClient:
        return self._tables.table(KEYS_TABLE)

    @property
    def _index(self) -> TableClient:
        return self._tables.table(INDEX_TABLE)

    async def insert(self, record: KeyRecord) -> None:
        """Idempotent for the same (key_hash, key_id); Conflict when either is taken by another key."""
        if not is_key_hash(record.key_hash):
            raise ValueError("key_hash must be 64 lower-case hex characters")
        _check_key_part("key_id", record.key_id)
        owners = owner_partitions(record)
        existing = await self.get_by_hash(record.key_hash)
        if existing is not None:
            self._check_same_key(existing, record)
            return
        for owner in owners:
            await self._insert_index_row(owner, record)
        try:
            with storage_errors():
                await self._keys.create_entity(to_entity(record))
        except ResourceExistsError:
            raced = await self.get_by_hash(record.key_hash)
            if raced is None:
                raise ServiceUnavailable("Key record vanished during insert; retry.") from None
            self._check_same_key(raced, record)

    @staticmethod
    def _check_same_key(existing: KeyRecord, record: KeyRecord) -> None:
        if existing.key_id != record.key_id:
            raise Conflict("This key is already registered under another key id.")

    async def _insert_index_row(self, owner: str, record: KeyRecord) -> None:
        row = {"PartitionKey": owner, "RowKey": record.key_id, "key_hash": record.key_hash}
        try:
            with storage_errors():
                await self._index.create_entity(row)
        except ResourceExistsError:
            with storage_errors():
                current = await self._index.get_entity(owner, record.key_id)
            if current.get("key_hash") != record.key_hash:
                raise Conflict(f"Key id {record.key_id} is already in use.", param="key_id") from None

    async def get_by_hash(self, key_hash: str) -> KeyRecord | None:
        found = await self._read(key_hash)
        return found[0] if found is not None else None

    async def find(self, key: str) -> KeyRecord | None:
        """The record of a presented key, or None. The key is hashed at once and never kept."""
        if not is_well_formed(key):
            return None
        return await self.get_by_hash(hash_key(key))

    async def list_for_owner(
        self, *, deployment_id: str | None = None, team: str | None = None
    ) -> list[KeyRecord]:
        owner = owner_partition(deployment_id=deployment_id, team=team)
        rows: list[tuple[str, str]] = []
        with storage_errors():
            async for row in self._index.query_entities(
                "PartitionKey eq @owner", parameters={"owner": owner}, select=["RowKey", "key_hash"]
            ):
                rows.append((row["RowKey"], row["key_hash"]))
        found = await asyncio.gather(*(self.get_by_hash(key_hash) for _, key_hash in rows))
        # Skip orphans left by failed or conflicting inserts.
        records = [
            r for (key_id, _), r in zip(rows, found, strict=True) if r is not None and r.key_id == key_id
        ]
        return sorted(records, key=lambda r: (r.created_at, r.key_id))

    async def retire(self, key_hash: str, *, until: datetime) -> KeyRecord | None:
        """Active -> rotating-out until `until`. Never un-revokes, never extends an expiry."""
        record, _ = await self._compare_and_swap(key_hash, lambda r: _retired(r, until))
        return record

    async def supersede(self, key_hash: str, *, at: datetime, grace: timedelta | None) -> KeyRecord | None:
        """Active -> rotating-out for `grace`, or revoked at `at` when grace is None; one caller wins.

        None when the key is no longer active (a concurrent rotation or revocation came first), so two
        rotations of one key can never both hand out a successor.
        """
        record, changed = await self._compare_and_swap(key_hash, _superseded(at, grace))
        return record if changed else None

    async def revoke(self, key_hash: str, *, at: datetime) -> bool:
        """One-way. True only when this call revoked the key (False if missing or already revoked)."""
        _, changed = await self._compare_and_swap(key_hash, _revoked(at))
        return changed

    async def revoke_all(
        self, *, deployment_id: str | None = None, team: str | None = None, at: datetime
    ) -> list[str]:
        """Revokes every key of one owner; returns the key ids this call revoked."""
        revoked = []
        for record in await self.list_for_owner(deployment_id=deployment_id, team=team):
            if await self.revoke(record.key_hash, at=at):
                revoked.append(record.key_id)
        return revoked

    async def record_last_used(self, key_hash: str, *, at: datetime) -> bool:
        """Moves last_used_at forward to `at`; never backwards. True when it wrote."""
        _, changed = await self._compare_and_swap(key_hash, _used(at))
        return changed

    async def _read(self, key_hash: str) -> tuple[KeyRecord, str] | None:
        if not is_key_hash(key_hash):
            return None
        try:
            with storage_errors():
                entity = await self._keys.get_entity(key_hash[:2], key_hash)
        except ResourceNotFoundError:
            return None
        return from_entity(entity), str(entity.metadata["etag"])

    async def _compare_and_swap(self, key_hash: str, change: Change) -> tuple[KeyRecord | None, bool]:
        for _ in range(MAX_CAS_ATTEMPTS):
            found = await self._read(key_hash)
            if found is None:
                return None, False
            record, etag = found
            updated = change(record)
            if updated is None:
                return record, False
            try:
                with storage_errors():
                    await self._keys.update_entity(
                        to_entity(updated),
                        mode=UpdateMode.MERGE,
                        etag=etag,
                        match_condition=MatchConditions.IfNotModified,
                    )
            except (ResourceModifiedError, ResourceNotFoundError):
                continue  # lost a race: re-read and decide again
            if (updated.status, updated.expires_at) != (record.status, record.expires_at):
                for listener in self._listeners:
                    listener(key_hash)
            return updated, True
        raise ServiceUnavailable("The key record is busy; retry.", code="key_contended")
