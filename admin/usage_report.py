"""The usage report: final hours from the hourly roll-up, everything else from raw usage rows.

[from, to) is cut at hour bounds. An hour is read from the roll-up (metering.usage_hours: one
PartitionKey range) only when it lies whole inside the range and the roll-up holds it as final, i.e.
rolled up and past its recount window; partial first and last hours, recent hours and hours the roll-up
never counted are aggregated from raw usage rows. Both sources count the same rows per hour, so the
report is the same either way; without a roll-up it is all raw (correct, only slower).

Usage rows are metadata only (usage.records); only the columns a report needs are selected.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from azure.data.tables.aio import TableClient

from admin import validation as v
from core.hours import HOUR, floor_hour, hour_key
from core.tables import Tables, rows_of
from metering.usage_hours import COUNTERS, TOKEN_COUNTERS, UsageHours, add_rolled, add_usage, zero

# group_by name -> the usage column (and report column) it groups on
GROUPS: dict[str, str] = {
    "team": "team", "deployment": "deployment_id", "plan": "plan_id", "model": "model_alias", "key": "key_id",
}
# filter parameter -> usage column
FILTERS: dict[str, str] = {"team": "team", "deployment": "deployment_id", "plan": "plan_id", "model": "model_alias"}
# granularity -> the leading characters of a usage PartitionKey that name its period, and their format
GRANULARITIES: dict[str, tuple[int, str]] = {"day": (8, "%Y%m%d"), "hour": (10, "%Y%m%d%H")}

Sums = dict[tuple[str, tuple[str | None, ...]], list[int]]  # (period, groups) -> counters


def ceil_hour(at: datetime) -> datetime:
    floor = floor_hour(at)
    return floor if floor == at else floor + HOUR


@dataclass(frozen=True)
class UsageQuery:
    start: datetime  # inclusive, UTC
    end: datetime  # exclusive, UTC
    granularity: str = "day"
    group_by: tuple[str, ...] = ("plan", "model")
    filters: Mapping[str, str] = field(default_factory=dict)  # FILTERS name -> exact value

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(GROUPS[name] for name in self.group_by)


@dataclass(frozen=True)
class UsageRow:
    period: datetime
    groups: tuple[str | None, ...]
    counters: tuple[int, ...]  # in COUNTERS order


@dataclass(frozen=True)
class UsageReport:
    query: UsageQuery
    rows: list[UsageRow]

    @property
    def header(self) -> list[str]:
        return ["period", *self.query.columns, *COUNTERS]

    def totals(self) -> dict[str, int]:
        return {name: sum(row.counters[i] for row in self.rows) for i, name in enumerate(COUNTERS)}


def usage_cells(row: UsageRow) -> list[Any]:
    """One data row's values in `UsageReport.header` order."""
    return [row.period.isoformat(), *row.groups, *row.counters]


def usage_view(report: UsageReport) -> dict[str, Any]:
    q = report.query
    return {
        "object": "list", "from": v.iso(q.start), "to": v.iso(q.end), "granularity": q.granularity,
        "group_by": list(q.group_by),
        "data": [dict(zip(report.header, usage_cells(row), strict=True)) for row in report.rows],
        "totals": report.totals(),
    }


async def read_usage(tables: Tables, q: UsageQuery) -> UsageReport:
    first, end = ceil_hour(q.start), floor_hour(q.end)  # the whole hours inside [from, to)
    final = await UsageHours(tables).final_hours(first, end) if first < end else set()
    sums: Sums = defaultdict(zero)
    for start, stop, rolled in segments(q, final):
        if rolled:
            await _add_rolled(tables, q, start, stop, sums)
        else:
            await _add_raw(tables, dataclasses.replace(q, start=start, end=stop), sums)
    return UsageReport(query=q, rows=_rows(q, sums))


def segments(q: UsageQuery, rolled_hours: set[datetime]) -> list[tuple[datetime, datetime, bool]]:
    """[from, to) as consecutive (start, end, from the roll-up) runs of hours, each one query."""
    runs: list[tuple[datetime, datetime, bool]] = []
    hour = floor_hour(q.start)
    while hour < q.end:
        start, end, rolled = max(hour, q.start), min(hour + HOUR, q.end), hour in rolled_hours
        if runs and runs[-1][2] == rolled:
            runs[-1] = (runs[-1][0], end, rolled)
        else:
            runs.append((start, end, rolled))
        hour += HOUR
    return runs


def _filters(q: UsageQuery, parts: list[str], params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    for index, (name, value) in enumerate(sorted(q.filters.items())):
        parts.append(f"{FILTERS[name]} eq @f{index}")
        params[f"f{index}"] = value
    return " and ".join(parts), params


def _raw_filter(q: UsageQuery) -> tuple[str, dict[str, Any]]:
    first, last = floor_hour(q.start), ceil_hour(q.end)
    # Partition keys are "{YYYYMMDDHH}-{shard}": every shard of the hours in [first, last).
    parts = ["PartitionKey ge @lo", "PartitionKey lt @hi"]
    params: dict[str, Any] = {"lo": f"{hour_key(first)}-", "hi": f"{hour_key(last)}-"}
    # Only a bound inside an hour needs the exact record time.
    if q.start != first:
        parts.append("at ge @start")
        params["start"] = q.start
    if q.end != last:
        parts.append("at lt @end")
        params["end"] = q.end
    return _filters(q, parts, params)


async def _add_raw(tables: Tables, q: UsageQuery, sums: Sums) -> None:
    query, params = _raw_filter(q)
    select = ["PartitionKey", "status", "estimated", *TOKEN_COUNTERS, *q.columns]
    await _aggregate(tables.table("usage"), q, query, params, select, sums, add_usage)


async def _add_rolled(tables: Tables, q: UsageQuery, start: datetime, end: datetime, sums: Sums) -> None:
    # Roll-up partition keys are the hours themselves; the reserved "~rollup" partition sorts after them.
    parts = ["PartitionKey ge @lo", "PartitionKey lt @hi"]
    query, params = _filters(q, parts, {"lo": hour_key(start), "hi": hour_key(end)})
    select = ["PartitionKey", *COUNTERS, *q.columns]
    await _aggregate(UsageHours(tables).table, q, query, params, select, sums, add_rolled)


async def _aggregate(
    table: TableClient, q: UsageQuery, query: str, params: dict[str, Any], select: list[str], sums: Sums,
    add: Callable[[list[int], Mapping[str, Any]], None],
) -> None:
    width = GRANULARITIES[q.granularity][0]
    columns = q.columns
    async for row in rows_of(table, query, params, select):
        add(sums[(row["PartitionKey"][:width], tuple(row.get(c) for c in columns))], row)


def _rows(q: UsageQuery, sums: Sums) -> list[UsageRow]:
    pattern = GRANULARITIES[q.granularity][1]
    return [
        UsageRow(datetime.strptime(period, pattern).replace(tzinfo=UTC), groups, tuple(counters))
        for (period, groups), counters in sorted(sums.items(), key=lambda item: _order(item[0]))
    ]


def _order(key: tuple[str, tuple[str | None, ...]]) -> tuple[str, tuple[tuple[bool, str], ...]]:
    period, groups = key
    return period, tuple((value is not None, value or "") for value in groups)
