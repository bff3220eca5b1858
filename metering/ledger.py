"""The ledger of Marketplace usage events: one row per (resourceId, dimension, hour).

Table `meterledger` (logical name), one partition per account = "{resourceId}|{dimension key}":
- RowKey "h|{YYYYMMDDHH}": one event — resource_id, dimension, hour, plan_id, tokens (Int64), quantity
  (decimal text), status, attempts, last_error, usage_event_id, accepted_quantity, mismatch,
  created_at, updated_at, sent_at.
- RowKey "m|{YYYYMM}|{deployment_id}|{plan key}": assigned_tokens — how much of that plan-month's
  overage has already been put into events.
- RowKey "state": carry_tokens — tokens of rolled (expired) events and sub-unit remainders, waiting for
  the next event — and carry_after, the hour they came from: they only go into a later hour.

Every change that moves tokens (opening an event, rolling one) is one entity-group transaction that
also rewrites the state row under its ETag, so two concurrent runs can neither bill a token twice nor
lose one: the loser's transaction fails as a whole and it re-reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode

from core.hours import hour_key, parse_hour_key
from core.tables import Tables, int64, int_value, rows_of, storage_errors, table_key

_STATE = "state"


class Status(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    EXPIRED_ROLLED = "expired-rolled"
    ERROR = "error"
    RETRY = "retry"


DONE = frozenset({Status.ACCEPTED, Status.DUPLICATE})
OPEN = frozenset({Status.PENDING, Status.RETRY})


class LedgerConflict(Exception):
    """Another run changed the account first; re-read it and plan again."""


def account_key(resource_id: str, dimension: str) -> str:
    return f"{table_key(resource_id.lower())}|{table_key(dimension)}"


def meter_month_key(month: str, deployment_id: str, plan_id: str) -> str:
    return f"{month}|{deployment_id}|{table_key(plan_id)}"


@dataclass(frozen=True)
class Entry:
    resource_id: str
    dimension: str
    hour: datetime
    plan_id: str
    tokens: int
    quantity: Decimal
    status: Status = Status.PENDING
    attempts: int = 0
    last_error: str | None = None
    usage_event_id: str | None = None
    accepted_quantity: Decimal | None = None
    mismatch: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None
    sent_at: datetime | None = None
    etag: str | None = None


@dataclass
class Account:
    """What the ledger holds for one (resourceId, dimension), as read at one moment."""

    resource_id: str
    dimension: str
    carry_tokens: int = 0
    carry_after: datetime | None = None
    assigned: dict[str, int] = field(default_factory=dict)
    entries: dict[datetime, Entry] = field(default_factory=dict)
    etag: str | None = None

    @property
    def key(self) -> str:
        return account_key(self.resource_id, self.dimension)


class Ledger:
    def __init__(self, tables: Tables) -> None:
        self._table = tables.table("meterledger")

    async def load(self, resource_id: str, dimension: str, since: datetime) -> Account:
        """The account's state, meter-month rows and its events from `since` on."""
        account = Account(resource_id, dimension)
        params = {"pk": account.key, "lo": f"h|{hour_key(since)}", "pending": "pending", "retry": "retry"}
        queries = (
            # "h|..." < "m|..." < "state": one range read returns all three kinds.
            "PartitionKey eq @pk and RowKey ge @lo",
            # Events left open before `since` (the job stopped running for a while) must still be rolled.
            # The SDK substitutes @names only in space-separated words: hence "( ... )".
            "PartitionKey eq @pk and RowKey lt @lo and ( status eq @pending or status eq @retry )",
        )
        for query in queries:
            async for row in rows_of(self._table, query, params):
                _absorb(account, row)
        return account

    async def open_event(
        self, account: Account, entry: Entry, *, assigned: Mapping[str, int], carry_tokens: int,
        carry_after: datetime | None,
    ) -> Account:
        """Insert a pending event, raise the meter-months it drew from and set the carry, atomically."""
        ops: list[Any] = [self._state_op(account, carry_tokens, carry_after, entry.created_at)]
        for month_key, tokens in assigned.items():
            row = {"PartitionKey": account.key, "RowKey": f"m|{month_key}", "assigned_tokens": int64(tokens)}
            ops.append(("upsert", row, {"mode": UpdateMode.REPLACE}))
        ops.append(("create", _entry_entity(account.key, entry)))
        results = await self._transact(ops)
        account.etag = results[0]["etag"]
        account.carry_tokens, account.carry_after = carry_tokens, carry_after
        account.assigned.update(assigned)
        account.entries[entry.hour] = dataclasses.replace(entry, etag=results[-1]["etag"])
        return account

    async def roll(self, account: Account, entry: Entry, *, now: datetime, reason: str) -> Account:
        """Mark an event that can no longer be sent in its hour and carry its tokens forward."""
        rolled = dataclasses.replace(entry, status=Status.EXPIRED_ROLLED, last_error=reason, updated_at=now)
        carry = account.carry_tokens + entry.tokens
        after = max(entry.hour, account.carry_after or entry.hour)
        ops: list[Any] = [
            self._state_op(account, carry, after, now),
            ("update", _entry_entity(account.key, rolled), _if_match(entry.etag)),
        ]
        results = await self._transact(ops)
        account.etag = results[0]["etag"]
        account.carry_tokens, account.carry_after = carry, after
        account.entries[entry.hour] = dataclasses.replace(rolled, etag=results[1]["etag"])
        return account

    async def record(self, entry: Entry, **changes: Any) -> Entry | None:
        """Write an event's outcome unless someone changed the row since it was read (then None)."""
        updated = dataclasses.replace(entry, **changes)
        with storage_errors():
            try:
                meta = await self._table.update_entity(
                    _entry_entity(account_key(entry.resource_id, entry.dimension), updated),
                    **_if_match(entry.etag),
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                return None
        return dataclasses.replace(updated, etag=meta.get("etag"))

    def _state_op(
        self, account: Account, carry_tokens: int, carry_after: datetime | None, now: datetime | None
    ) -> tuple[Any, ...]:
        row = {"PartitionKey": account.key, "RowKey": _STATE, "carry_tokens": int64(carry_tokens), "updated_at": now}
        if carry_after is not None:
            row["carry_after"] = hour_key(carry_after)
        if account.etag is None:
            return ("create", row)
        return ("update", row, _if_match(account.etag))

    async def _transact(self, ops: list[Any]) -> list[Mapping[str, Any]]:
        with storage_errors():
            try:
                return list(await self._table.submit_transaction(ops))
            except TableTransactionError as error:
                if error.status_code in (404, 409, 412):
                    raise LedgerConflict(f"transaction refused ({error.status_code})") from error
                raise


def _if_match(etag: str | None) -> dict[str, Any]:
    if etag is None:
        raise ValueError("an event row is only rewritten with the etag it was read with")
    return {"mode": UpdateMode.REPLACE, "etag": etag, "match_condition": MatchConditions.IfNotModified}


def _absorb(account: Account, row: Any) -> None:
    key: str = row["RowKey"]
    if key == _STATE:
        account.carry_tokens = int_value(row.get("carry_tokens"))
        account.carry_after = parse_hour_key(row["carry_after"]) if row.get("carry_after") else None
        account.etag = row.metadata["etag"]
    elif key.startswith("m|"):
        account.assigned[key[2:]] = int_value(row.get("assigned_tokens"))
    elif key.startswith("h|"):
        entry = entry_from(row)
        account.entries[entry.hour] = entry


def _entry_entity(partition: str, entry: Entry) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": partition,
        "RowKey": f"h|{hour_key(entry.hour)}",
        "resource_id": entry.resource_id,
        "dimension": entry.dimension,
        "hour": entry.hour,
        "plan_id": entry.plan_id,
        "tokens": int64(entry.tokens),
        "quantity": str(entry.quantity),
        "status": entry.status.value,
        "attempts": entry.attempts,
        "mismatch": entry.mismatch,
    }
    optional = {
        "last_error": entry.last_error,
        "usage_event_id": entry.usage_event_id,
        "accepted_quantity": None if entry.accepted_quantity is None else str(entry.accepted_quantity),
        "created_at": entry.created_at,
        "updated_at": entry.updated_at,
        "sent_at": entry.sent_at,
    }
    entity.update({name: value for name, value in optional.items() if value is not None})
    return entity


def entry_from(row: Any) -> Entry:
    accepted = row.get("accepted_quantity")
    return Entry(
        resource_id=row["resource_id"],
        dimension=row["dimension"],
        hour=parse_hour_key(row["RowKey"][2:]),
        plan_id=row["plan_id"],
        tokens=int_value(row.get("tokens")),
        quantity=Decimal(row["quantity"]),
        status=Status(row["status"]),
        attempts=int_value(row.get("attempts")),
        last_error=row.get("last_error"),
        usage_event_id=row.get("usage_event_id"),
        accepted_quantity=None if accepted is None else Decimal(accepted),
        mismatch=bool(row.get("mismatch")),
        created_at=row.get("created_at"),
        updated_at=row.get("updated_at"),
        sent_at=row.get("sent_at"),
        etag=row.metadata["etag"],
    )
