"""Admin HTTP handlers for prepaid credit (admin.credits) of a team or a deployment, and every owner's balances.

POST …/credits tops up (Idempotency-Key header, or `idempotency_key` in the body for clients that cannot set
headers), GET …/credits shows, GET …/credits/ledger lists (?from=&to=, ?format=csv), POST …/credits/adjust and
…/credits/convert change. No `from __future__ import annotations`: the Functions host reads the real `Request`
annotation.
"""

import weakref
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from admin import handlers as admin_handlers
from admin import validation as v
from admin.auth import Operator
from admin.credits import AdminCredits, Owner
from admin.credits_views import LEDGER_COLUMNS, balances_view, idempotency_key, ledger_view
from admin.csv_export import csv_download, file_stamp
from admin.service import AdminService
from core.errors import InvalidRequest, NotFound, ServiceUnavailable
from core.hours import floor_hour
from core.http import Handler, bearer_token, endpoint, read_json_object
from core.settings import Settings
from limits.balance import PrepaidBalances
from limits.limiter import BALANCE_TABLE
from proxy.upstreams import UpstreamsConfig

LEDGER_DAYS = 30
_built: "weakref.WeakKeyDictionary[AdminService, AdminCredits]" = weakref.WeakKeyDictionary()


async def service_settings() -> Settings:
    from services import get_services

    return (await get_services()).settings


async def credits_of(service: AdminService) -> AdminCredits:
    found = _built.get(service)
    if found is None:
        settings = await service_settings()

        async def sunsets(now: datetime) -> Mapping[str, str | None]:
            models = UpstreamsConfig.load(settings.upstreams_file).models
            return {alias: model.replacement for alias, model in models.items() if model.sunset(now)}

        found = _built[service] = AdminCredits(
            balances=PrepaidBalances(service.tables.table(BALANCE_TABLE), now=service.now), audit=service.audit,
            plans=service.plans, now=service.now, expiry_days=settings.credit_expiry_days, sunsets=sunsets,
        )
    return found


async def _call(req: Request) -> tuple[AdminService, Operator, AdminCredits, Owner]:
    service = await admin_handlers.get_admin_service()
    op = await service.auth.authenticate(bearer_token(req))
    if "team" in req.path_params:
        team = await service.get_team(req.path_params["team"])
        owner = Owner(f"team-{team.team}", service.plans.get(team.plan_id), ("admin.team", f"team/{team.team}"))
    else:
        if service.deployments is None:
            raise ServiceUnavailable("Deployment administration is not configured.", code="admin_not_configured")
        deployment = await service.deployments.get(req.path_params["deployment_id"])
        if deployment.state.lower() == "deleted":
            raise NotFound("The deployment is deleted.", param="deployment_id")
        plan = service.plans.get(deployment.plan_id) if deployment.plan_id else None
        owner = Owner(f"dep-{deployment.deployment_id}", plan, ("admin.deployment", deployment.application_id))
    return service, op, await credits_of(service), owner


async def _body(req: Request, service: AdminService) -> tuple[dict[str, Any], str | None]:
    body = await read_json_object(req, max_bytes=service.max_body_bytes)
    in_body = body.pop("idempotency_key", None)
    header = req.headers.get("idempotency-key")
    if in_body is not None and (not isinstance(in_body, str) or (header is not None and header != in_body)):
        raise InvalidRequest("'idempotency_key' must be a string equal to any Idempotency-Key header.",
                             param="idempotency_key")
    return body, idempotency_key(header if header is not None else in_body)


async def _credits(req: Request) -> Response:
    service, op, domain, owner = await _call(req)
    if req.method == "GET":
        return JSONResponse(await domain.show(op, owner), headers={"cache-control": "no-store"})
    body, key = await _body(req, service)
    result = await domain.top_up(op, owner, body, key)
    return JSONResponse(result, status_code=200 if result["duplicate"] else 201)


async def _credits_ledger(req: Request) -> Response:
    service, op, domain, owner = await _call(req)
    now = service.now()
    end = v.query_instant(req.query_params, "to") or floor_hour(now) + timedelta(hours=1)
    start = v.query_instant(req.query_params, "from") or end - timedelta(days=LEDGER_DAYS)
    if start >= end:
        raise InvalidRequest("'from' must be before 'to'.", param="from")
    await domain.show(op, owner)  # folds expired lots and converts sunset packs first, so the ledger shows them
    rows = await ledger_view(service.tables, service.plans, owner.key, start, end)
    if req.query_params.get("format") == "csv":
        return csv_download(f"credits-{owner.key}-{file_stamp(now)}.csv", LEDGER_COLUMNS,
                            ([row[name] for name in LEDGER_COLUMNS] for row in rows))
    body = {"object": "list", "owner": owner.key, "from": v.iso(start), "to": v.iso(end), "data": rows}
    return JSONResponse(body, headers={"cache-control": "no-store"})


async def _credits_adjust(req: Request) -> Response:
    service, op, domain, owner = await _call(req)
    body, key = await _body(req, service)
    return JSONResponse(await domain.adjust(op, owner, body, key))


async def _credits_convert(req: Request) -> Response:
    service, op, domain, owner = await _call(req)
    body, _ = await _body(req, service)
    return JSONResponse(await domain.convert(op, owner, body))


@endpoint
async def all_balances(req: Request) -> Response:
    service = await admin_handlers.get_admin_service()
    await service.auth.authenticate(bearer_token(req))
    now = service.now()
    body = {"object": "list", "at": v.iso(now), "data": await balances_view(service.tables, now)}
    return JSONResponse(body, headers={"cache-control": "no-store"})


# The Functions host names each function after its handler: one per owner kind.
@endpoint
async def team_credits(req: Request) -> Response:
    return await _credits(req)


@endpoint
async def team_credits_ledger(req: Request) -> Response:
    return await _credits_ledger(req)


@endpoint
async def team_credits_adjust(req: Request) -> Response:
    return await _credits_adjust(req)


@endpoint
async def team_credits_convert(req: Request) -> Response:
    return await _credits_convert(req)


@endpoint
async def deployment_credits(req: Request) -> Response:
    return await _credits(req)


@endpoint
async def deployment_credits_ledger(req: Request) -> Response:
    return await _credits_ledger(req)


@endpoint
async def deployment_credits_adjust(req: Request) -> Response:
    return await _credits_adjust(req)


@endpoint
async def deployment_credits_convert(req: Request) -> Response:
    return await _credits_convert(req)


CREDIT_ROUTES: tuple[tuple[str, tuple[str, ...], Handler], ...] = (
    ("api/admin/credits", ("GET",), all_balances),
    ("api/admin/teams/{team}/credits", ("GET", "POST"), team_credits),
    ("api/admin/teams/{team}/credits/ledger", ("GET",), team_credits_ledger),
    ("api/admin/teams/{team}/credits/adjust", ("POST",), team_credits_adjust),
    ("api/admin/teams/{team}/credits/convert", ("POST",), team_credits_convert),
    ("api/admin/deployments/{deployment_id}/credits", ("GET", "POST"), deployment_credits),
    ("api/admin/deployments/{deployment_id}/credits/ledger", ("GET",), deployment_credits_ledger),
    ("api/admin/deployments/{deployment_id}/credits/adjust", ("POST",), deployment_credits_adjust),
    ("api/admin/deployments/{deployment_id}/credits/convert", ("POST",), deployment_credits_convert),
)
