"""GET /api/admin/usage/verify: recount the raw usage of whole UTC hours and list where the aggregates differ.

For disputes: it reads every raw record of the range (usage.verify), so the range is at most 24 hours and must
lie within the raw retention. Storage failing anywhere answers 503, never part of a report.
The handlers keep real (not postponed) annotations: the Functions host reads them.
"""

from collections.abc import Mapping
from datetime import datetime, timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from admin import validation as v
from admin.handlers import _operator
from admin.report_handlers import time_range
from core.errors import InvalidRequest
from core.hours import HOUR, ceil_hour, floor_hour
from core.http import Handler, endpoint
from usage.retention import RetentionPolicy
from usage.verify import verify_usage

MAX_SPAN = timedelta(hours=24)


def verify_range(params: Mapping[str, str], now: datetime, retention: RetentionPolicy) -> tuple[datetime, datetime]:
    """[from, to) widened to whole UTC hours; `from` is required, `to` defaults to the end of from's hour."""
    start = v.query_instant(params, "from")
    if start is None:
        raise InvalidRequest("'from' is required: the first hour to verify.", param="from")
    if not params.get("to"):
        params = {**params, "to": (floor_hour(start) + HOUR).isoformat()}
    start, end = time_range(params, now, max_days=2)  # the 24-hour limit applies to the whole hours below
    start, end = floor_hour(start), ceil_hour(end)
    if end - start > MAX_SPAN:
        raise InvalidRequest("The range spans more than 24 whole hours (it reads every raw record).", param="from")
    if start < retention.raw_cutoff(now):
        raise InvalidRequest(
            f"Raw usage is kept for {retention.raw_days} days; 'from' reaches before that.", param="from"
        )
    return start, end


@endpoint
async def admin_usage_verify(req: Request) -> Response:
    service, _ = await _operator(req)
    start, end = verify_range(req.query_params, service.now(), service.usage_retention)
    report = await verify_usage(service.tables, start, end)
    body = {"object": "usage.verification", **report.summary(), "data": [d.view() for d in report.differences]}
    return JSONResponse(body, headers={"cache-control": "no-store"})


VERIFY_ROUTES: tuple[tuple[str, tuple[str, ...], Handler], ...] = (
    ("api/admin/usage/verify", ("GET",), admin_usage_verify),
)
