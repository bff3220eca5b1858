"""Read-only operator reports over HTTP: usage (JSON or CSV) and the Marketplace metering ledger.

Query parameters are parsed here; an empty parameter counts as absent (HTML forms send empty fields).
The handlers keep real (not postponed) annotations: the Functions host reads them.
"""

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from admin import validation as v
from admin.csv_export import csv_download, file_stamp
from admin.handlers import _operator
from admin.reports import AdminReports, LedgerQuery, ledger_view
from admin.service import AdminService
from admin.usage_report import FILTERS, GRANULARITIES, GROUPS, UsageQuery, usage_cells, usage_view
from core.errors import InvalidRequest
from core.hours import ceil_hour, floor_hour
from core.http import Handler, endpoint
from metering.ledger import Status
from usage.retention import RetentionPolicy

DEFAULT_SPAN = timedelta(days=7)
MAX_DAYS = {"day": 93, "hour": 14}
LEDGER_MAX_DAYS = 93
MAX_FILTER_CHARS = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

Params = Mapping[str, str]


def _param(params: Params, name: str) -> str | None:
    return params.get(name) or None


def time_range(params: Params, now: datetime, *, max_days: int) -> tuple[datetime, datetime]:
    """[from, to): by default the last 7 days up to now; a lone bound gets a 7-day window from or up to it."""
    start, end = v.query_instant(params, "from"), v.query_instant(params, "to")
    if start is None:
        end = end or now.astimezone(UTC)
        start = end - DEFAULT_SPAN
    elif end is None:
        end = start + DEFAULT_SPAN
    if start >= end:
        raise InvalidRequest("'to' must be later than 'from'.", param="to")
    if end - start > timedelta(days=max_days):
        raise InvalidRequest(f"The range spans more than {max_days} days.", param="from")
    return start, end


def _choice(params: Params, name: str, allowed: tuple[str, ...], default: str | None) -> str | None:
    value = _param(params, name)
    if value is None:
        return default
    if value not in allowed:
        raise InvalidRequest(f"'{name}' must be one of: {', '.join(allowed)}.", param=name)
    return value


def _group_by(params: Params) -> tuple[str, ...]:
    raw = params.get("group_by")
    if raw is None:
        return ("plan", "model")
    names = [name.strip() for name in raw.split(",") if name.strip()]
    if any(name not in GROUPS for name in names) or len(set(names)) != len(names):
        raise InvalidRequest(
            f"'group_by' must be a comma-separated list of distinct: {', '.join(GROUPS)}.", param="group_by"
        )
    return tuple(names)


def _exact(params: Params, name: str) -> str | None:
    value = _param(params, name)
    if value is not None and (len(value) > MAX_FILTER_CHARS or _CONTROL.search(value)):
        raise InvalidRequest(f"'{name}' must be at most {MAX_FILTER_CHARS} printable characters.", param=name)
    return value


def usage_query(params: Params, now: datetime, retention: RetentionPolicy) -> UsageQuery:
    """Whole UTC hours: a bound inside an hour takes in the whole hour (usage is aggregated per hour)."""
    granularity = _choice(params, "granularity", GRANULARITIES, "day")
    assert granularity is not None
    start, end = time_range(params, ceil_hour(now), max_days=MAX_DAYS[granularity])
    start, end = floor_hour(start), ceil_hour(end)
    if start < retention.aggregate_cutoff(now):
        raise InvalidRequest(
            f"Usage is kept for {retention.aggregate_days} days; 'from' reaches before that.", param="from"
        )
    filters = {name: value for name in FILTERS if (value := _exact(params, name)) is not None}
    return UsageQuery(start=start, end=end, granularity=granularity, group_by=_group_by(params), filters=filters)


def ledger_query(params: Params, now: datetime) -> LedgerQuery:
    start, end = time_range(params, now, max_days=LEDGER_MAX_DAYS)
    status = _choice(params, "status", tuple(s.value for s in Status), None)
    return LedgerQuery(
        start=start, end=end, status=None if status is None else Status(status),
        resource_id=_exact(params, "resource_id"), plan_id=_exact(params, "plan"),
        limit=v.page_size(_param(params, "limit")), token=_param(params, "continuation_token"),
    )


def _reports(service: AdminService) -> AdminReports:
    return AdminReports(service.tables, service.plans, service.now)


@endpoint
async def admin_usage_report(req: Request) -> Response:
    service, _ = await _operator(req)
    query = usage_query(req.query_params, service.now(), service.usage_retention)
    output = _choice(req.query_params, "format", ("json", "csv"), "json")
    report = await _reports(service).usage(query)
    if output == "csv":
        filename = f"liutong-usage-{file_stamp(query.start)}-{file_stamp(query.end)}.csv"
        return csv_download(filename, report.header, (usage_cells(row) for row in report.rows))
    return JSONResponse(usage_view(report), headers={"cache-control": "no-store"})


@endpoint
async def admin_metering_ledger(req: Request) -> Response:
    service, _ = await _operator(req)
    page = await _reports(service).ledger(ledger_query(req.query_params, service.now()))
    return JSONResponse(ledger_view(page), headers={"cache-control": "no-store"})


REPORT_ROUTES: tuple[tuple[str, tuple[str, ...], Handler], ...] = (
    ("api/admin/usage", ("GET",), admin_usage_report),
    ("api/admin/metering/ledger", ("GET",), admin_metering_ledger),
)
