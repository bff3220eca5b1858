"""Operator reports, read-only: usage (admin.usage_report), and the Marketplace metering ledger."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from admin import validation as v
from admin.team_store import decode_token, encode_token
from admin.usage_report import UsageQuery, UsageReport, read_usage
from core.errors import InvalidRequest
from core.hours import ceil_hour, hour_key
from core.tables import Tables, rows_of, storage_errors, table_key
from limits.plans import PlanCatalog
from metering.ledger import Entry, Status, entry_from

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
        "resource_id": entry.resource_id, "dimension": entry.dimension, "hour": v.iso(entry.hour),
        "plan_id": entry.plan_id, "tokens": entry.tokens, "quantity": str(entry.quantity),
        "status": entry.status.value, "attempts": entry.attempts, "last_error": entry.last_error,
        "usage_event_id": entry.usage_event_id, "accepted_quantity": None if accepted is None else str(accepted),
        "mismatch": entry.mismatch, "sent_at": v.iso(entry.sent_at), "updated_at": v.iso(entry.updated_at),
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
        return await read_usage(self.tables, q)

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
