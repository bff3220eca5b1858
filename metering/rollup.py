"""Hourly roll-up of usage records per deployment and plan, and the overage arithmetic.

Table `meterhours` (logical name):
- PartitionKey = deployment_id, RowKey = "{YYYYMMDDHH}|{plan key}": plan_id, dimension, tokens (Int64,
  the sum of the hour's `plan_tokens`), counted_at. Only plans whose overage is "bill" are kept.
- PartitionKey "~rollup", RowKey "watermark": the last hour rolled up for every deployment.

A month's overage is read from one partition range (the deployment's rows of that month), never by
rescanning usage. Counts only ever grow: a late usage record raises its hour's total on a recount.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from core.hours import HOUR, hour_key, parse_hour_key
from core.tables import Tables, int64, int_value, rows_of, storage_errors, table_key
from limits.plans import PlanCatalog
from usage.groups import COUNTERS, GROUP_COLUMNS
from usage.reader import read_aggregates

QUANTITY_PLACES = 6
PLAN_TOKENS = COUNTERS.index("plan_tokens")
_DEPLOYMENT, _PLAN = GROUP_COLUMNS.index("deployment_id"), GROUP_COLUMNS.index("plan_id")
_WATERMARK = ("~rollup", "watermark")


# -- overage arithmetic ---------------------------------------------------------------------------


def billable_through(hours: Iterable[tuple[datetime, int]], included: int, through: datetime) -> int:
    """Tokens of one plan-month above its included tokens, counting hours up to `through`.

    billable(hour) = this(hour) - this(hour - 1): summing events built from it bills exactly the overage.
    """
    used = sum(tokens for hour, tokens in hours if hour <= through)
    return max(0, used - included)


def quantity_for(tokens: int, unit_tokens: int) -> tuple[Decimal, int]:
    """The largest quantity with at most 6 decimals not above tokens/unit, and the tokens it covers.

    For units dividing 10^6·k (1000, 1M, ...) every token is covered exactly; otherwise the few
    uncovered tokens are carried by the caller into the next event, so none is lost.
    """
    step = unit_tokens // math.gcd(unit_tokens, 10**QUANTITY_PLACES)
    covered = tokens - tokens % step
    quantity = (Decimal(covered) / Decimal(unit_tokens)).quantize(Decimal(1).scaleb(-QUANTITY_PLACES))
    return quantity, covered


# -- usage scan -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HourTotal:
    deployment_id: str
    plan_id: str
    dimension: str
    hour: datetime
    tokens: int


async def count_hours(
    tables: Tables, first: datetime, last: datetime, catalog: PlanCatalog, *, deployment_id: str | None = None,
    repair: bool = True,
) -> list[HourTotal]:
    """`plan_tokens` per UTC hour, deployment and billable plan over [first, last], all writer shards, from the
    usage aggregates (usage.reader: cost grows with hours x shards x groups, not with requests)."""
    aggregates, _ = await read_aggregates(tables, first, last + HOUR, repair=repair)
    sums: dict[tuple[datetime, str, str], int] = defaultdict(int)
    for row in aggregates:
        dep, plan_id = row.group[_DEPLOYMENT], row.group[_PLAN]
        if dep and plan_id and (deployment_id is None or dep == deployment_id):
            sums[(row.hour, dep, plan_id)] += row.counters[PLAN_TOKENS]
    return sorted(
        (
            HourTotal(dep, plan_id, plan.dimension, hour, tokens)
            for (hour, dep, plan_id), tokens in sums.items()
            if (plan := catalog.get(plan_id)) is not None and plan.overage == "bill" and plan.dimension
        ),
        key=lambda total: (total.hour, total.deployment_id, total.plan_id),
    )


# -- the hourly totals table ----------------------------------------------------------------------


class HourlyTotals:
    def __init__(self, tables: Tables) -> None:
        self._table = tables.table("meterhours")

    async def raise_to(self, total: HourTotal, *, now: datetime) -> None:
        """Store the hour's total unless a larger one is already there (recounts race with flushes)."""
        entity = _total_entity(total, now)
        for _ in range(5):
            with storage_errors():
                try:
                    current = await self._table.get_entity(entity["PartitionKey"], entity["RowKey"])
                except ResourceNotFoundError:
                    try:
                        await self._table.create_entity(entity)
                        return
                    except ResourceExistsError:
                        continue
                if int_value(current.get("tokens")) >= total.tokens:
                    return
                try:
                    await self._table.update_entity(
                        entity, mode=UpdateMode.REPLACE, etag=current.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
                    return
                except (ResourceModifiedError, ResourceNotFoundError):
                    continue
        raise RuntimeError(f"could not store the hourly total of {total.deployment_id} at {total.hour}")

    async def rows(self, deployment_id: str, since: datetime, through: datetime) -> list[HourTotal]:
        query = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"
        params = {"pk": deployment_id, "lo": hour_key(since), "hi": f"{hour_key(through)}|~"}
        return [_total_from(e) async for e in rows_of(self._table, query, params)]

    async def watermark(self) -> datetime | None:
        with storage_errors():
            try:
                entity = await self._table.get_entity(*_WATERMARK)
            except ResourceNotFoundError:
                return None
        return parse_hour_key(entity["hour"])

    async def advance_watermark(self, hour: datetime) -> None:
        current = await self.watermark()
        if current is None or hour > current:
            with storage_errors():
                await self._table.upsert_entity(
                    {"PartitionKey": _WATERMARK[0], "RowKey": _WATERMARK[1], "hour": hour_key(hour)}
                )


def merge_totals(stored: Sequence[HourTotal], fresh: Sequence[HourTotal]) -> list[HourTotal]:
    """Stored rows overlaid with fresh counts (the larger wins), as `raise_to` would leave them."""
    merged = {(t.deployment_id, t.plan_id, t.hour): t for t in stored}
    for total in fresh:
        key = (total.deployment_id, total.plan_id, total.hour)
        if key not in merged or merged[key].tokens < total.tokens:
            merged[key] = total
    return sorted(merged.values(), key=lambda t: (t.deployment_id, t.hour, t.plan_id))


def _total_entity(total: HourTotal, now: datetime) -> dict[str, Any]:
    return {
        "PartitionKey": total.deployment_id,
        "RowKey": f"{hour_key(total.hour)}|{table_key(total.plan_id)}",
        "plan_id": total.plan_id,
        "dimension": total.dimension,
        "tokens": int64(total.tokens),
        "counted_at": now,
    }


def _total_from(entity: Any) -> HourTotal:
    return HourTotal(
        deployment_id=entity["PartitionKey"],
        plan_id=entity["plan_id"],
        dimension=entity["dimension"],
        hour=parse_hour_key(entity["RowKey"].split("|", 1)[0]),
        tokens=int_value(entity.get("tokens")),
    )
