"""Admin HTTP handlers for marketplace deployments and the audit view: authenticate, parse, call, map.

No `from __future__ import annotations`: the Functions host reads the real `Request` annotation.
"""

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from admin import handlers as admin_handlers
from admin import validation as v
from admin.audit_view import audit_query
from admin.auth import Operator
from admin.deployment_views import deployment_view, reason
from admin.deployments import HISTORY_DAYS, AdminDeployments
from admin.service import AdminService
from core.errors import InvalidRequest, ServiceUnavailable
from core.http import Handler, bearer_token, endpoint, optional_flag, read_json_object

_PAGING = {"limit", "continuation_token"}
_LIST_PARAMS = {"state", "plan", "application_id", *_PAGING}
_AUDIT_PARAMS = {"from", "to", "action", "actor_oid", "resource_id", "key_id", "outcome", *_PAGING}


async def _operator(req: Request) -> tuple[AdminService, Operator]:
    # Looked up on the module at call time, like admin.handlers, so one getter serves every admin route.
    service = await admin_handlers.get_admin_service()
    return service, await service.auth.authenticate(bearer_token(req))


def _deployments(service: AdminService) -> AdminDeployments:
    if service.deployments is None:
        raise ServiceUnavailable("Deployment administration is not configured.", code="admin_not_configured")
    return service.deployments


def _params(req: Request, allowed: set[str]) -> dict[str, str]:
    """Query parameters, each at most once; an unknown one is refused rather than silently ignored."""
    for name in req.query_params:
        if name not in allowed:
            raise InvalidRequest("Unknown query parameter.", param=name[:64], code="unknown_parameter")
        if len(req.query_params.getlist(name)) > 1:
            raise InvalidRequest("Each query parameter may appear once.", param=name)
    return dict(req.query_params)


async def _body(req: Request, service: AdminService) -> dict[str, Any]:
    if req.headers.get("content-length", "0") == "0" and "transfer-encoding" not in req.headers:
        return {}
    return await read_json_object(req, max_bytes=service.max_body_bytes)


def _page(data: list[dict[str, Any]], token: str | None, **extra: Any) -> dict[str, Any]:
    return {"object": "list", "data": data, "continuation_token": token, "has_more": token is not None, **extra}


@endpoint
async def admin_deployments_list(req: Request) -> Response:
    service, _ = await _operator(req)
    params = _params(req, _LIST_PARAMS)
    page = await _deployments(service).page(
        params, size=v.page_size(params.get("limit")), token=params.get("continuation_token")
    )
    return JSONResponse(_page([deployment_view(d) for d in page.deployments], page.next_token))


@endpoint
async def admin_deployment_show(req: Request) -> Response:
    service, _ = await _operator(req)
    _params(req, set())
    deployments = _deployments(service)
    deployment = await deployments.get(req.path_params["deployment_id"])
    history, truncated = await deployments.history(deployment)
    return JSONResponse({
        **deployment_view(deployment), "limits": await service.overrides.view(f"dep-{deployment.deployment_id}"),
        "history": history, "history_days": HISTORY_DAYS, "history_truncated": truncated,
    })


@endpoint
async def admin_deployment_rotate(req: Request) -> Response:
    service, op = await _operator(req)
    _params(req, set())
    body = await _body(req, service)
    why = reason(body, also=frozenset({"revoke_previous"}))
    revoke_previous = optional_flag(body, "revoke_previous")
    deployment = await _deployments(service).rotate(
        op, req.path_params["deployment_id"], why, revoke_previous=revoke_previous
    )
    return JSONResponse(deployment_view(deployment))


async def _set_suspended(req: Request, *, suspend: bool) -> Response:
    service, op = await _operator(req)
    _params(req, set())
    why = reason(await _body(req, service))
    deployments = _deployments(service)
    change = deployments.suspend if suspend else deployments.resume
    return JSONResponse(deployment_view(await change(op, req.path_params["deployment_id"], why)))


@endpoint
async def admin_deployment_suspend(req: Request) -> Response:
    return await _set_suspended(req, suspend=True)


@endpoint
async def admin_deployment_resume(req: Request) -> Response:
    return await _set_suspended(req, suspend=False)


@endpoint
async def admin_deployment_revoke(req: Request) -> Response:
    service, op = await _operator(req)
    _params(req, set())
    why = reason(await _body(req, service))
    revocation = await _deployments(service).revoke(op, req.path_params["deployment_id"], why)
    return JSONResponse({**deployment_view(revocation.deployment), "revoked_key_ids": revocation.revoked_key_ids})


@endpoint
async def admin_audit_list(req: Request) -> Response:
    service, _ = await _operator(req)
    params = _params(req, _AUDIT_PARAMS)
    query = audit_query(params, service.now())
    page = await service.audit_view.page(
        query, size=v.page_size(params.get("limit")), token=params.get("continuation_token")
    )
    return JSONResponse(_page(page.events, page.next_token, **{"from": query.start.isoformat(),
                                                                "to": query.end.isoformat()}))


DEPLOYMENT_ROUTES: tuple[tuple[str, tuple[str, ...], Handler], ...] = (
    ("api/admin/deployments", ("GET",), admin_deployments_list),
    ("api/admin/deployments/{deployment_id}", ("GET",), admin_deployment_show),
    ("api/admin/deployments/{deployment_id}/rotate", ("POST",), admin_deployment_rotate),
    ("api/admin/deployments/{deployment_id}/revoke", ("POST",), admin_deployment_revoke),
    ("api/admin/deployments/{deployment_id}/suspend", ("POST",), admin_deployment_suspend),
    ("api/admin/deployments/{deployment_id}/resume", ("POST",), admin_deployment_resume),
    ("api/admin/audit", ("GET",), admin_audit_list),
)
