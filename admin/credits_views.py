"""Prepaid credit as operators see it: lots, the ledger with consumption per hour from the usage aggregates, the
balances of every owner with what expires soon, and the checks on credit request bodies."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from admin import validation as v
from core.errors import InvalidRequest
from core.hours import floor_hour
from core.tables import Tables, rows_of
from limits.balance_state import ROW, state_of
from limits.ledger import read_ledger
from limits.limiter import BALANCE_TABLE
from limits.lots import Lot
from limits.plans import PlanCatalog
from usage.groups import COUNTERS, GROUP_COLUMNS
from usage.reader import read_aggregates
from usage.summing import owner_of

LEDGER_COLUMNS = ("at", "kind", "tokens", "lot", "model", "to_model", "moved", "expires_at", "reference", "reason",
                  "actor", "available_after")
_PLAN_TOKENS = COUNTERS.index("plan_tokens")
_MAX_TEXT = 256


def lot_view(lot: Lot, now: datetime) -> dict[str, Any]:
    return {
        "lot": lot.id, "left": lot.left, "held": lot.held, "amount": lot.amount, "model": lot.model,
        "reference": lot.reference, "bought_at": v.iso(lot.bought_at), "expires_at": v.iso(lot.expires_at),
        "expired": lot.expired(now),
    }


def parse_tokens(body: dict[str, Any], *, low: int, high: int) -> int:
    value = body.get("tokens")
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidRequest(f"'tokens' must be a whole number from {low} to {high}.", param="tokens")
    return value


def printable(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise InvalidRequest(f"'{name}' is required.", param=name)
        return None
    if not isinstance(value, str) or len(value) > _MAX_TEXT or not value.isprintable():
        raise InvalidRequest(f"'{name}' must be at most {_MAX_TEXT} printable characters.", param=name)
    return value


def idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not 1 <= len(value) <= 200 or not value.isprintable():
        raise InvalidRequest("'Idempotency-Key' must be 1 to 200 printable characters.", param="Idempotency-Key")
    return value


async def ledger_view(
    tables: Tables, plans: PlanCatalog, owner: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """The ledger rows of [start, end) and, per hour, what the owner's prepaid calls consumed, in time order."""
    rows: list[dict[str, Any]] = []
    async for entry in read_ledger(tables.table(BALANCE_TABLE), owner, start=start, end=end):
        event = entry.event
        rows.append({
            "at": v.iso(entry.at), "kind": event.kind, "tokens": event.tokens, "lot": event.lot,
            "model": event.model, "to_model": event.to_model, "moved": event.moved,
            "expires_at": v.iso(event.expires_at), "reference": event.reference, "reason": event.reason,
            "actor": event.actor, "available_after": entry.available_after,
        })
    for hour, tokens in sorted((await consumption(tables, plans, owner, start, end)).items()):
        rows.append({name: None for name in LEDGER_COLUMNS} | {
            "at": v.iso(hour), "kind": "consumption", "tokens": -tokens, "moved": 0,
        })
    rows.sort(key=lambda row: (row["at"], row["kind"] == "consumption"))
    return rows


async def consumption(
    tables: Tables, plans: PlanCatalog, owner: str, start: datetime, end: datetime
) -> dict[datetime, int]:
    """Plan tokens of the owner's calls on prepaid plans, per whole UTC hour of [start, end)."""
    first, last = floor_hour(start), floor_hour(end) + (timedelta(hours=1) if end != floor_hour(end) else timedelta())
    aggregates, _ = await read_aggregates(tables, first, last)
    hours: dict[datetime, int] = defaultdict(int)
    plan_of = GROUP_COLUMNS.index("plan_id")
    for row in aggregates:
        plan = plans.get(row.group[plan_of] or "")
        if plan is not None and plan.mode == "prepaid" and owner_of(row.group) == owner:
            hours[row.hour] += row.counters[_PLAN_TOKENS]
    return hours


async def balances_view(tables: Tables, now: datetime) -> list[dict[str, Any]]:
    """Every owner's balance and the lots expiring in the next 30 days (the usage page)."""
    owners = []
    async for row in rows_of(tables.table(BALANCE_TABLE), "RowKey eq @row", {"row": ROW}):
        state = state_of(row)
        lots = sorted((lot for lot in state.lots.lots if not lot.expired(now)), key=Lot.order)
        soon = [lot_view(lot, now) for lot in lots
                if lot.left and lot.expires_at is not None and lot.expires_at <= now + timedelta(days=30)]
        owners.append({"owner": row["PartitionKey"], "available": state.lots.available(now),
                       "reserved": state.reserved, "shortfall": state.shortfall, "expiring": soon})
    return owners
