"""Admin HTTP handlers: authenticate, parse, call AdminService, map to JSON. No business logic here."""

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from admin import validation as v
from admin.auth import Operator
from admin.service import SUSPENDED, AdminService, MintedKey, key_view, team_view
from core.errors import ServiceUnavailable
from core.http import bearer_token, endpoint, read_json_object


async def get_admin_service() -> AdminService:
    from services import get_services

    admin = getattr(await get_services(), "admin", None)
    if not isinstance(admin, AdminService):
        # Fail closed: without an admin tenant and audience nobody is an operator.
        raise ServiceUnavailable("The admin API is not configured.", code="admin_not_configured")
    return admin


async def _operator(req: Request) -> tuple[AdminService, Operator]:
    service = await get_admin_service()
    return service, await service.auth.authenticate(bearer_token(req))


async def _body(req: Request, service: AdminService) -> dict[str, Any]:
    return await read_json_object(req, max_bytes=service.max_body_bytes)


async def _optional_body(req: Request, service: AdminService) -> dict[str, Any]:
    if req.headers.get("content-length", "0") == "0" and "transfer-encoding" not in req.headers:
        return {}
    return await _body(req, service)


def _minted(minted: MintedKey) -> dict[str, Any]:
    # The one place the plaintext leaves the service: this response, once.
    return {**key_view(minted.record), "key": minted.key}


@endpoint
async def teams_collection(req: Request) -> Response:
    service, op = await _operator(req)
    if req.method == "POST":
        team = await service.create_team(op, await _body(req, service))
        return JSONResponse(team_view(team), status_code=201)
    page = await service.list_teams(
        size=v.page_size(req.query_params.get("limit")), token=req.query_params.get("continuation_token")
    )
    return JSONResponse({
        "object": "list", "data": [team_view(t) for t in page.teams],
        "continuation_token": page.next_token, "has_more": page.next_token is not None,
    })


@endpoint
async def team_item(req: Request) -> Response:
    service, op = await _operator(req)
    name = req.path_params["team"]
    if req.method == "PATCH":
        return JSONResponse(team_view(await service.update_team(op, name, await _body(req, service))))
    team = await service.get_team(name)
    return JSONResponse({**team_view(team), "limits": await service.overrides.view(f"team-{team.team}")})


@endpoint
async def suspend_team(req: Request) -> Response:
    service, op = await _operator(req)
    return JSONResponse(team_view(await service.set_status(op, req.path_params["team"], SUSPENDED)))


@endpoint
async def resume_team(req: Request) -> Response:
    service, op = await _operator(req)
    return JSONResponse(team_view(await service.set_status(op, req.path_params["team"], "active")))


@endpoint
async def team_keys(req: Request) -> Response:
    service, op = await _operator(req)
    name = req.path_params["team"]
    if req.method == "POST":
        minted = await service.mint_key(op, name, await _optional_body(req, service))
        return JSONResponse(_minted(minted), status_code=201, headers={"cache-control": "no-store"})
    records = await service.list_keys(name)
    return JSONResponse({"object": "list", "data": [key_view(r) for r in records]})


@endpoint
async def revoke_team_key(req: Request) -> Response:
    service, op = await _operator(req)
    record = await service.revoke_team_key(op, req.path_params["team"], req.path_params["key_id"])
    return JSONResponse(key_view(record))


@endpoint
async def rotate_team_key(req: Request) -> Response:
    service, op = await _operator(req)
    minted, old = await service.rotate_team_key(
        op, req.path_params["team"], req.path_params["key_id"], await _optional_body(req, service)
    )
    return JSONResponse(
        {**_minted(minted), "previous": key_view(old)}, status_code=201, headers={"cache-control": "no-store"}
    )
