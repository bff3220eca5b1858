"""Admin HTTP handlers for a team's own provider credentials (BYOK): list, register or replace, remove.

No `from __future__ import annotations`: the Functions host reads the real `Request` annotation.
"""

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from admin import handlers as admin_handlers
from admin.auth import Operator
from admin.byok import AdminByok
from admin.service import AdminService
from core.errors import ServiceUnavailable
from core.http import Handler, bearer_token, check_fields, endpoint, read_json_object
from keystore.teams import Team


async def _call(req: Request) -> tuple[AdminService, Operator, AdminByok, Team]:
    from services import get_services

    service = await admin_handlers.get_admin_service()
    op = await service.auth.authenticate(bearer_token(req))
    byok = getattr(await get_services(), "byok_admin", None)
    if not isinstance(byok, AdminByok):
        raise ServiceUnavailable("BYOK administration is not configured.", code="byok_not_configured")
    return service, op, byok, await service.get_team(req.path_params["team"])


@endpoint
async def team_byok(req: Request) -> Response:
    _, _, byok, team = await _call(req)
    return JSONResponse({"object": "list", "team": team.team, "data": await byok.list(team)})


@endpoint
async def team_byok_item(req: Request) -> Response:
    service, op, byok, team = await _call(req)
    alias = req.path_params["alias"]
    if req.method == "DELETE":
        return JSONResponse(await byok.remove(op, team, alias))
    body: dict[str, Any] = await read_json_object(req, max_bytes=service.max_body_bytes)
    check_fields(body, {"api_key"})
    return JSONResponse(await byok.register(op, team, alias, body))


BYOK_ROUTES: tuple[tuple[str, tuple[str, ...], Handler], ...] = (
    ("api/admin/teams/{team}/byok", ("GET",), team_byok),
    ("api/admin/teams/{team}/byok/{alias}", ("PUT", "DELETE"), team_byok_item),
)
