"""The credit ledger: top-ups, expiries, conversions and adjustments of an owner's prepaid balance.

Its rows live in table `balances` beside the balance row they change (PartitionKey = owner key, RowKey =
"ledger-" + the UTC time to the microsecond + "-" + the owner's ledger sequence number, kept on the balance row), so
each is written in one entity-group transaction with the balance row: a ledger row exists exactly when its change
landed, and a write that lost its compare-and-swap wrote none. Properties: seq (Int64), kind, tokens (Int64, the
change of the available balance), lot, model, to_model, moved (Int64), expires_at, reference, reason, actor, at,
available_after (Int64).
Consumption by calls is not here: admin.credits adds it per hour from the usage aggregates when listing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.data.tables import TableTransactionError, UpdateMode
from azure.data.tables.aio import TableClient

from core.tables import rows_of, storage_errors
from limits.lots import LedgerEvent
from limits.owners import int64, owner_key, read_int

PREFIX = "ledger-"
_CONFLICT = {404, 409, 412}


@dataclass(frozen=True)
class LedgerEntry:
    at: datetime
    event: LedgerEvent
    available_after: int


def ledger_rows(
    key: str, events: Sequence[LedgerEvent], *, at: datetime, first: int, available_after: int
) -> list[dict[str, Any]]:
    rows = []
    for seq, event in enumerate(events, start=first):
        row: dict[str, Any] = {
            "PartitionKey": key, "RowKey": f"{PREFIX}{at:%Y%m%dT%H%M%S%f}-{seq:012d}", "seq": int64(seq),
            "kind": event.kind, "tokens": int64(event.tokens), "lot": event.lot, "moved": int64(event.moved),
            "at": at, "available_after": int64(available_after),
        }
        optional = {"model": event.model, "to_model": event.to_model, "expires_at": event.expires_at,
                    "reference": event.reference, "reason": event.reason, "actor": event.actor}
        rows.append({**row, **{name: value for name, value in optional.items() if value is not None}})
    return rows


async def write_with_ledger(
    table: TableClient, entity: dict[str, Any], etag: str | None, rows: list[dict[str, Any]]
) -> str | None:
    """As core.tables.write_if_unchanged, with the ledger rows in the same transaction: all land or none."""
    if etag is None:
        first: tuple[Any, ...] = ("create", entity)
    else:
        first = ("update", entity, {"mode": UpdateMode.REPLACE, "etag": etag,
                                    "match_condition": MatchConditions.IfNotModified})
    with storage_errors():
        try:
            result = await table.submit_transaction([first, *(("create", row) for row in rows)])
        except TableTransactionError as failed:
            if failed.status_code in _CONFLICT:
                return None
            raise
    return str(result[0]["etag"])


async def read_ledger(
    table: TableClient, owner: str, *, start: datetime | None = None, end: datetime | None = None
) -> AsyncIterator[LedgerEntry]:
    """The owner's ledger rows in the order they were written, from `start` (inclusive) to `end` (exclusive)."""
    low = f"{PREFIX}{start:%Y%m%dT%H%M%S%f}" if start else PREFIX
    high = f"{PREFIX}{end:%Y%m%dT%H%M%S%f}" if end else PREFIX[:-1] + "."
    query = "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high"
    rows = [row async for row in rows_of(table, query, {"pk": owner_key(owner), "low": low, "high": high})]
    # Instances' clocks differ a little; the sequence is the order the writes landed in.
    for row in sorted(rows, key=lambda row: read_int(row, "seq")):
        yield LedgerEntry(row["at"], _event(row), read_int(row, "available_after"))


def _event(row: Any) -> LedgerEvent:
    return LedgerEvent(
        kind=str(row["kind"]), tokens=read_int(row, "tokens"), lot=str(row.get("lot", "")),
        model=row.get("model"), to_model=row.get("to_model"), moved=read_int(row, "moved"),
        expires_at=row.get("expires_at"), reference=row.get("reference"), reason=row.get("reason"),
        actor=row.get("actor"),
    )
