"""Entra's device code flow: `POST /{tenant}/oauth2/v2.0/devicecode`, the token endpoint's
device_code grant, and the page at the verification URI where a person enters the code and picks a
local user (there are no passwords here).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from localdev.standin import delegated, device_login_page
from localdev.standin.aad_errors import NO_STORE, Refused, error_response, missing
from localdev.standin.directory import OPERATOR_UPN, User
from localdev.standin.oidc import _known_tenant, _tenant_error
from localdev.standin.sign_ins import APPROVED, DECLINED, PENDING, DeviceFlow
from localdev.standin.state import StandinState

DEVICECODE_PATH = "/{tenant}/oauth2/v2.0/devicecode"
DEVICE_LOGIN_PATH = "/devicelogin"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"


class SignInRefused(Exception):
    """The page's answer to a code or user it cannot accept."""


def verification_uri(state: StandinState) -> str:
    # Plain HTTP: a browser opens it without trusting the stand-in's certificate.
    return f"{state.base_url}{DEVICE_LOGIN_PATH}"


def start_flow(state: StandinState, tenant: str, form: Mapping[str, str]) -> dict[str, Any]:
    client_id = delegated.public_client_id(state, tenant, form)
    scopes = form.get("scope", "")
    delegated.parse_scopes(state, scopes)
    flow = state.sign_ins.start(
        client_id=client_id, tenant=tenant, scope=scopes, lifetime_seconds=state.config.device_code_lifetime_seconds
    )
    uri = verification_uri(state)
    return {
        "user_code": flow.user_code,
        "device_code": flow.device_code,
        "verification_uri": uri,
        "expires_in": state.config.device_code_lifetime_seconds,
        "interval": state.config.device_code_interval_seconds,
        "message": f"To sign in, use a web browser to open the page {uri} and enter the code {flow.user_code} "
        "to authenticate.",
    }


def _flow_state(state: StandinState, tenant: str, device_code: str) -> DeviceFlow:
    flow = state.sign_ins.by_device_code(device_code)
    if flow is None or flow.tenant.lower() != tenant.lower():
        raise Refused(400, "bad_verification_code", 70000, "The provided value for 'device_code' is not valid.")
    if state.sign_ins.expired(flow):
        raise Refused(400, "expired_token", 70020, "The provided value for the input parameter 'device_code' "
                      "is not valid. This device code has expired.")
    if flow.status == DECLINED:
        raise Refused(400, "authorization_declined", 70000, "The user declined the authorization request.")
    if flow.status != APPROVED:
        raise Refused(400, "authorization_pending", 70016, "The provided request has not yet been authorized by "
                      "the user. The user must input their code.")
    return flow


def device_code_grant(state: StandinState, tenant: str, form: Mapping[str, str]) -> dict[str, Any]:
    device_code = form.get("device_code", "")
    if not device_code:
        raise missing("device_code")
    client_id = delegated.public_client_id(state, tenant, form)
    flow = _flow_state(state, tenant, device_code)
    user = state.directory.user(flow.user_oid or "")
    if user is None or flow.client_id.lower() != client_id.lower():
        raise Refused(400, "invalid_grant", 70000, "Provided grant is invalid or malformed.")
    state.sign_ins.redeem(flow)
    scopes = delegated.parse_scopes(state, flow.scope)
    return delegated.token_response(state, user=user, client_id=client_id, scopes=scopes, form=form)


def decide(state: StandinState, user_code: str, *, user: str | None, approve: bool) -> tuple[DeviceFlow, User | None]:
    """What the page does with a code: approve it for `user` (UPN or object ID) or decline it."""
    flow = state.sign_ins.by_user_code(user_code)
    if flow is None or flow.status != PENDING or state.sign_ins.expired(flow):
        raise SignInRefused("That code didn't work. Check the code and try again.")
    if not approve:
        state.sign_ins.decide(flow, user_oid=None, approve=False)
        return flow, None
    found = state.directory.user(user or "")
    if found is None or not delegated.user_may_sign_in(found, flow.tenant):
        raise SignInRefused("That account does not exist in the tenant this application signs in to.")
    state.sign_ins.decide(flow, user_oid=found.oid, approve=True)
    return flow, found


def approve_device_code(state: StandinState, user_code: str, user: str = OPERATOR_UPN) -> None:
    """For tests and scripts: what a person does on the verification page."""
    decide(state, user_code, user=user, approve=True)


def decline_device_code(state: StandinState, user_code: str) -> None:
    decide(state, user_code, user=None, approve=False)


def routes(state: StandinState) -> list[Route]:
    async def devicecode(request: Request) -> Response:
        tenant = request.path_params["tenant"]
        if not _known_tenant(tenant):
            return _tenant_error(tenant)
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        try:
            return JSONResponse(start_flow(state, tenant, form), headers=NO_STORE)
        except Refused as refused:
            return error_response(state, refused)

    async def login_page(request: Request) -> Response:
        code = request.query_params.get("code", "")
        return HTMLResponse(device_login_page.form(state.directory.users(), code=code), headers=NO_STORE)

    async def login_submit(request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        approve = form.get("action") == "approve"
        try:
            flow, user = decide(state, form.get("user_code", ""), user=form.get("user"), approve=approve)
        except SignInRefused as refused:
            page = device_login_page.form(state.directory.users(), code=form.get("user_code", ""), error=str(refused))
            return HTMLResponse(page, status_code=400, headers=NO_STORE)
        client = state.directory.public_client(flow.client_id, flow.tenant)
        name = client.name if client else flow.client_id
        return HTMLResponse(device_login_page.done(name, user), headers=NO_STORE)

    return [
        Route(DEVICECODE_PATH, devicecode, methods=["POST"]),
        Route(DEVICE_LOGIN_PATH, login_page, methods=["GET"]),
        Route(DEVICE_LOGIN_PATH, login_submit, methods=["POST"]),
    ]
