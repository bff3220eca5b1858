"""Admin HTTP handlers for limit overrides: PUT sets (replacing any earlier one), DELETE clears.

No `from __future__ import annotations`: the Functions host reads the real `Request` annotation.
"""

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from admin import handlers as admin_handlers
from admin.auth import Operator
from admin.overrides import AdminOverrides, reason_of
from admin.service import AdminService
from core.errors import NotFound, ServiceUnavailable
from core.http import Handler, bearer_token, check_fields, endpoint, read_json_object
from limits.plans import Plan


async def _call(req: Request) -> tuple[AdminService, Operator, dict[str, Any]]:
    service = await admin_handlers.get_admin_service()
    op = await service.auth.authenticate(bearer_token(req))
    no_body = req.headers.get("content-length", "0") == "0" and "transfer-encoding" not in req.headers
    body = {} if no_body else await read_json_object(req, max_bytes=service.max_body_bytes)
    return service, op, body


async def _apply(
    req: Request, service: AdminService, op: Operator, body: dict[str, Any], owner: str, plan: Plan | None,
    audit_as: tuple[str, str],
) -> Response:
    overrides: AdminOverrides = service.overrides
    if req.method == "DELETE":
        check_fields(body, {"reason"})
        cleared = await overrides.clear(op, owner=owner, plan=plan, reason=reason_of(body), audit_as=audit_as)
        return JSONResponse({"object": "limits", "owner": owner, "cleared": cleared})
    view = await overrides.set(op, owner=owner, plan=plan, body=body, audit_as=audit_as)
    return JSONResponse({"object": "limits", "owner": owner, **view})


@endpoint
async def deployment_limits(req: Request) -> Response:
    service, op, body = await _call(req)
    if service.deployments is None:
        raise ServiceUnavailable("Deployment administration is not configured.", code="admin_not_configured")
    deployment = await service.deployments.get(req.path_params["deployment_id"])
    if deployment.state.lower() == "deleted":
        raise NotFound("The deployment is deleted.", param="deployment_id")
    plan = service.plans.get(deployment.plan_id) if deployment.plan_id else None
    owner = f"dep-{deployment.deployment_id}"
    return await _apply(req, service, op, body, owner, plan, ("admin.deployment", deployment.application_id))


@endpoint
async def team_limits(req: Request) -> Response:
    service, op, body = await _call(req)
    team = await service.get_team(req.path_params["team"])
    plan = service.plans.get(team.plan_id)
    return await _apply(req, service, op, body, f"team-{team.team}", plan, ("admin.team", f"team/{team.team}"))


OVERRIDE_ROUTES: tuple[tuple[str, tuple[str, ...], Handler], ...] = (
    ("api/admin/deployments/{deployment_id}/limits", ("PUT", "DELETE"), deployment_limits),
    ("api/admin/teams/{team}/limits", ("PUT", "DELETE"), team_limits),
)
