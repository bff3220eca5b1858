"""HTTP handlers of the provisioning surface: parse, call the domain, map the result."""

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from core.errors import InvalidRequest
from core.http import bearer_token, check_fields, endpoint, optional_flag, read_json_object
from core.metrics import counted
from services import get_services

_NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


@counted("webhook")
@endpoint
async def marketplace_notification(req: Request) -> Response:
    services = await get_services()
    services.webhook.authorize(req.query_params.get("sig"))
    payload = await read_json_object(req, max_bytes=services.settings.max_body_bytes)
    deployment = await services.webhook.handle(payload)
    return JSONResponse({"applicationId": deployment.application_id, "provisioningState": deployment.state})


@counted("exchange")
@endpoint
async def exchange_key(req: Request) -> Response:
    return await _exchange(req, force_rotate=False)


@counted("rotate")
@endpoint
async def rotate_key(req: Request) -> Response:
    return await _exchange(req, force_rotate=True)


async def _exchange(req: Request, *, force_rotate: bool) -> Response:
    services = await get_services()
    claims = await services.exchange.authenticate(bearer_token(req))
    body = await read_json_object(req, max_bytes=services.settings.max_body_bytes)
    check_fields(body, {"application_id", "revoke_previous"} if force_rotate else {"application_id"})
    application_id = body.get("application_id")
    if not isinstance(application_id, str) or not application_id:
        raise InvalidRequest("application_id must be a managed application resource ID.", param="application_id")
    revoke_previous = optional_flag(body, "revoke_previous")
    grant = await services.exchange.exchange(
        claims, application_id, force_rotate=force_rotate, revoke_previous=revoke_previous
    )
    return JSONResponse(grant.body(), headers=_NO_STORE)

