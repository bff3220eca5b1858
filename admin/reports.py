"""Operator reports, read-only: usage aggregated from the usage table, and the Marketplace metering ledger.

Usage rows are metadata only (metering.usage); only the columns a report needs are selected.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from admin.team_store import decode_token, encode_token
from core.errors import InvalidRequest
from core.tables import Tables, storage_errors
from metering.ledger import Entry, Status, entry_from
from metering.plans import PlanCatalog
from metering.rollup import HOUR, floor_hour, hour_key, int_value, rows_of, table_key

# group_by name -> the usage column (and report column) it groups on
GROUPS: dict[str, str] = {
    "team": "team", "deployment": "deployment_id", "plan": "plan_id", "model": "model_alias", "key": "key_id",
}
# filter parameter -> usage column
FILTERS: dict[str, str] = {"team": "team", "deployment": "deployment_id", "plan": "plan_id", "model": "model_alias"}
TOKEN_COUNTERS = ("prompt_tokens", "cached_tokens", "completion_tokens", "total_tokens", "plan_tokens")
COUNTERS = ("requests", "errors", *TOKEN_COUNTERS, "estimated_requests")
# granularity -> the leading characters of a usage PartitionKey that name its period, and their format
GRANULARITIES: dict[str, tuple[int, str]] = {"day": (8, "%Y%m%d"), "hour": (10, "%Y%m%d%H")}


def ceil_hour(at: datetime) -> datetime:
    floor = floor_hour(at)
    return floor if floor == at else floor + HOUR


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


# -- usage ----------------------------------------------------------------------------------------


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
        "object": "list", "from": _iso(q.start), "to": _iso(q.end), "granularity": q.granularity,
        "group_by": list(q.group_by),
        "data": [dict(zip(report.header, usage_cells(row), strict=True)) for row in report.rows],
        "totals": report.totals(),
    }


def _usage_filter(q: UsageQuery) -> tuple[str, dict[str, Any]]:
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
    for index, (name, value) in enumerate(sorted(q.filters.items())):
        parts.append(f"{FILTERS[name]} eq @f{index}")
        params[f"f{index}"] = value
    return " and ".join(parts), params


def _add(counters: list[int], row: Any) -> None:
    counters[0] += 1
    counters[1] += int_value(row.get("status")) >= 400
    for index, name in enumerate(TOKEN_COUNTERS, start=2):
        counters[index] += int_value(row.get(name))
    counters[-1] += bool(row.get("estimated"))


def _order(key: tuple[str, tuple[str | None, ...]]) -> tuple[str, tuple[tuple[bool, str], ...]]:
    period, groups = key
    return period, tuple((value is not None, value or "") for value in groups)


# -- the metering ledger --------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerQuery:
    start: datetime  # events whose hour starts in [start, end)
    end: datetime
    status: Status | None = None
    resource_id: str | None = None
    plan_id: str | None = None
    limit: int = 50
    token: str | None = None


@dataclass(frozen=True)
class LedgerPage:
    entries: list[Entry]
    summary: dict[str, int]
    next_token: str | None


def entry_view(entry: Entry) -> dict[str, Any]:
    accepted = entry.accepted_quantity
    return {
        "resource_id": entry.resource_id, "dimension": entry.dimension, "hour": _iso(entry.hour),
        "plan_id": entry.plan_id, "tokens": entry.tokens, "quantity": str(entry.quantity),
        "status": entry.status.value, "attempts": entry.attempts, "last_error": entry.last_error,
        "usage_event_id": entry.usage_event_id, "accepted_quantity": None if accepted is None else str(accepted),
        "mismatch": entry.mismatch, "sent_at": _iso(entry.sent_at), "updated_at": _iso(entry.updated_at),
    }


def ledger_view(page: LedgerPage) -> dict[str, Any]:
    return {
        "object": "list", "data": [entry_view(e) for e in page.entries], "summary": page.summary,
        "continuation_token": page.next_token, "has_more": page.next_token is not None,
    }


def _ledger_filter(q: LedgerQuery) -> tuple[list[str], dict[str, Any]]:
    # Event rows are "h|{YYYYMMDDHH}"; "m|..." and "state" rows sort after every one of them.
    parts = ["RowKey ge @lo", "RowKey lt @hi"]
    params: dict[str, Any] = {"lo": f"h|{hour_key(ceil_hour(q.start))}", "hi": f"h|{hour_key(ceil_hour(q.end))}"}
    if q.resource_id is not None:
        # Accounts are "{resource key}|{dimension key}" with the resource lower-cased; "}" follows "|".
        prefix = table_key(q.resource_id.lower())
        parts += ["PartitionKey ge @plo", "PartitionKey lt @phi"]
        params.update(plo=f"{prefix}|", phi=f"{prefix}}}")
    if q.status is not None:
        parts.append("status eq @status")
        params["status"] = q.status.value
    if q.plan_id is not None:
        parts.append("plan_id eq @plan")
        params["plan"] = q.plan_id
    return parts, params


def _resume_after(token: str | None) -> tuple[str, str] | None:
    value = decode_token(token)
    if value is None:
        return None
    if set(value) != {"pk", "rk"} or not value["rk"].startswith("h|"):
        raise InvalidRequest("Invalid continuation token.", param="continuation_token")
    return value["pk"], value["rk"]


class AdminReports:
    def __init__(self, tables: Tables, plans: PlanCatalog, now: Callable[[], datetime]) -> None:
        self.tables = tables
        self.plans = plans
        self.now = now

    async def usage(self, q: UsageQuery) -> UsageReport:
        query, params = _usage_filter(q)
        columns = q.columns
        select = ["PartitionKey", "status", "estimated", *TOKEN_COUNTERS, *columns]
        width, pattern = GRANULARITIES[q.granularity]
        sums: dict[tuple[str, tuple[str | None, ...]], list[int]] = defaultdict(lambda: [0] * len(COUNTERS))
        async for row in rows_of(self.tables.table("usage"), query, params, select):
            _add(sums[(row["PartitionKey"][:width], tuple(row.get(c) for c in columns))], row)
        rows = [
            UsageRow(datetime.strptime(period, pattern).replace(tzinfo=UTC), groups, tuple(counters))
            for (period, groups), counters in sorted(sums.items(), key=lambda item: _order(item[0]))
        ]
        return UsageReport(query=q, rows=rows)

    async def ledger(self, q: LedgerQuery) -> LedgerPage:
        after = _resume_after(q.token)
        parts, params = _ledger_filter(q)
        summary = await self._summary(" and ".join(parts), params)
        if after is not None:
            # Table order is PartitionKey then RowKey: resume right after the last row handed out.
            parts.append("( PartitionKey gt @apk or ( PartitionKey eq @apk and RowKey gt @ark ) )")
            params.update(apk=after[0], ark=after[1])
        rows = await self._first_rows(" and ".join(parts), params, q.limit + 1)
        page = rows[: q.limit]
        # One row beyond the page tells whether there is more, so a last full page gets no token.
        last = page[-1] if len(rows) > q.limit else None
        next_token = None if last is None else encode_token({"pk": last["PartitionKey"], "rk": last["RowKey"]})
        return LedgerPage(entries=[entry_from(row) for row in page], summary=summary, next_token=next_token)

    async def _summary(self, query: str, params: dict[str, Any]) -> dict[str, int]:
        summary = {status.value: 0 for status in Status}
        async for row in rows_of(self.tables.table("meterledger"), query, params, ["status"]):
            if row.get("status") in summary:
                summary[row["status"]] += 1
        return summary

    async def _first_rows(self, query: str, params: dict[str, Any], count: int) -> list[Any]:
        table = self.tables.table("meterledger")
        rows: list[Any] = []
        with storage_errors():
            try:
                async for row in table.query_entities(query, parameters=params, results_per_page=count):
                    rows.append(row)
                    if len(rows) >= count:
                        break
            except ResourceNotFoundError:
                return []
        return rows
