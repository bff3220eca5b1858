"""The usage report: the hourly usage aggregates (usage.reader) of whole UTC hours, summed per period and group.

The range is whole hours (the handler widens a bound inside an hour to the hour around it); its cost grows
with hours x writer shards x groups, never with the number of requests. Usage aggregates are metadata only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from admin import validation as v
from core.tables import Tables
from usage.groups import COUNTERS, group_order
from usage.reader import read_aggregates
from usage.refusals import UNRESOLVED, RefusalCount, read_refusals
from usage.summing import Sums, sum_aggregates

# group_by name -> the usage column (and report column) it groups on
GROUPS: dict[str, str] = {
    "team": "team", "deployment": "deployment_id", "plan": "plan_id", "model": "model_alias", "key": "key_id",
}
# filter parameter -> usage column
FILTERS: dict[str, str] = {"team": "team", "deployment": "deployment_id", "plan": "plan_id", "model": "model_alias"}
GRANULARITIES = ("day", "hour")
MAX_REFUSED_ROWS = 100


@dataclass(frozen=True)
class UsageQuery:
    start: datetime  # inclusive, UTC, a whole hour
    end: datetime  # exclusive, UTC, a whole hour
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
    refused: list[RefusalCount] = field(default_factory=list)

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
        "refused": refused_view(report.refused),
    }


def refused_view(counts: list[RefusalCount]) -> dict[str, Any]:
    """Refused calls (401/403/429) of the range per owner, key, status and code, the largest first."""
    totals: Counter[tuple[str, str, int, str]] = Counter()
    for count in counts:
        totals[(count.owner, count.key, count.status, count.code)] += count.count
    top = totals.most_common(MAX_REFUSED_ROWS)
    return {
        "total": sum(totals.values()),
        "data": [{"owner": None if owner == UNRESOLVED else owner, "key": key, "status": status, "code": code,
                  "count": n} for (owner, key, status, code), n in top],
        "more_groups": max(0, len(totals) - len(top)),
    }


async def read_usage(tables: Tables, q: UsageQuery) -> UsageReport:
    aggregates, _ = await read_aggregates(tables, q.start, q.end)
    filters = {FILTERS[name]: value for name, value in q.filters.items()}
    sums: Sums = sum_aggregates(aggregates, q.columns, daily=q.granularity == "day", filters=filters)
    rows = [UsageRow(period, groups, tuple(counters)) for (period, groups), counters in sums.items()]
    return UsageReport(query=q, rows=sorted(rows, key=_order), refused=await _refusals(tables, q))


async def _refusals(tables: Tables, q: UsageQuery) -> list[RefusalCount]:
    # Refusals carry no plan or model (a refused call never reached one): only the owner filters apply.
    owner = (f"team-{q.filters['team']}" if "team" in q.filters
             else f"dep-{q.filters['deployment']}" if "deployment" in q.filters else None)
    found = await read_refusals(tables, q.start, q.end)
    return [r for r in found if owner is None or r.owner == owner]


def _order(row: UsageRow) -> tuple[datetime, tuple[tuple[bool, str], ...]]:
    return row.period, group_order(row.groups)
