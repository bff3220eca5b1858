"""GET /api/admin/models (aliases, lifecycle, callers of deprecated ones) and /api/admin/models/callers?model=.

`days` (1 to MAX_DAYS, default 7) is how far back callers are read: the whole UTC hours up to the end of the
current one. The upstreams file is the service's own (LIUTONG_UPSTREAMS_FILE), read when asked.
The handlers keep real (not postponed) annotations: the Functions host reads them.
"""

import re
from collections.abc import Mapping
from datetime import datetime, timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from admin import validation as v
from admin.handlers import _operator
from admin.model_callers import models_report, read_callers
from core.errors import InvalidRequest
from core.hours import ceil_hour
from core.http import Handler, endpoint
from proxy.upstreams import ALIAS_PATTERN, UpstreamsConfig

DEFAULT_DAYS = 7
MAX_DAYS = 93
_ALIAS = re.compile(ALIAS_PATTERN)


async def upstreams_config() -> UpstreamsConfig:
    from services import get_services

    return UpstreamsConfig.load((await get_services()).settings.upstreams_file)


def callers_window(params: Mapping[str, str], now: datetime) -> tuple[datetime, datetime]:
    raw = params.get("days") or str(DEFAULT_DAYS)
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_DAYS:
        raise InvalidRequest(f"'days' must be an integer between 1 and {MAX_DAYS}.", param="days")
    end = ceil_hour(now)
    return end - timedelta(days=int(raw)), end


@endpoint
async def admin_models(req: Request) -> Response:
    service, _ = await _operator(req)
    now = service.now()
    start, end = callers_window(req.query_params, now)
    report = await models_report(service.tables, await upstreams_config(), now, start, end)
    return JSONResponse(report, headers={"cache-control": "no-store"})


@endpoint
async def admin_model_callers(req: Request) -> Response:
    """Callers of any alias, in the file or no longer: the usage aggregates remember it either way."""
    service, _ = await _operator(req)
    alias = req.query_params.get("model") or ""
    if not _ALIAS.match(alias):
        raise InvalidRequest("'model' must be a model alias.", param="model")
    start, end = callers_window(req.query_params, service.now())
    callers = (await read_callers(service.tables, [alias], start, end))[alias]
    body = {"object": "list", "model": alias, "from": v.iso(start), "to": v.iso(end),
            "data": [caller.view() for caller in callers]}
    return JSONResponse(body, headers={"cache-control": "no-store"})


MODEL_ROUTES: tuple[tuple[str, tuple[str, ...], Handler], ...] = (
    ("api/admin/models", ("GET",), admin_models),
    ("api/admin/models/callers", ("GET",), admin_model_callers),
)
