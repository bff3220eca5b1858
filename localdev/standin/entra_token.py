"""Entra's token endpoints (v2 `scope=`, v1 `resource=`) for the client-credentials grant with a secret,
and (v2) the device_code and refresh_token grants of public clients (localdev.standin.device_code, .delegated).

Confidential clients are the app registrations on `state.app_registrations`. Success and error bodies follow
Entra's shape (AADSTS codes, trace and correlation IDs), so real clients such as msal parse them.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from localdev.standin import delegated, device_code
from localdev.standin.aad_errors import NO_STORE, Refused, error_response, missing, unknown_client
from localdev.standin.app_registrations import AppRegistration
from localdev.standin.oidc import _known_tenant, _tenant_error
from localdev.standin.state import StandinState, audience_for

V2_PATH = "/{tenant}/oauth2/v2.0/token"
V1_PATH = "/{tenant}/oauth2/token"

async def _form(request: Request) -> dict[str, str]:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise missing("grant_type")
    return dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))


def _client_credentials(request: Request, form: Mapping[str, str]) -> tuple[str, str]:
    """client_id and client_secret, from HTTP Basic (client_secret_basic) or the body (client_secret_post)."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            client_id, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError) as error:
            raise Refused(401, "invalid_client", 7000216, "The client credentials are malformed.") from error
        return unquote_plus(client_id), unquote_plus(secret)
    return form.get("client_id", ""), form.get("client_secret", "")


def _v2_resource(form: Mapping[str, str]) -> str:
    scopes = form.get("scope", "").split()
    if not scopes:
        raise missing("scope")
    if len(scopes) != 1:
        raise Refused(
            400,
            "invalid_scope",
            70011,
            f"The provided value for the input parameter 'scope' is not "
            f"valid. The scope {' '.join(scopes)} is not valid.",
        )
    if not scopes[0].endswith("/.default"):
        raise Refused(
            400,
            "invalid_scope",
            1002012,
            f"The provided value for scope {scopes[0]} is not valid. "
            "Client credential flows must have a scope value with /.default suffixed to the resource "
            "identifier (application ID URI).",
        )
    return audience_for(scopes[0])


def _v1_resource(form: Mapping[str, str]) -> str:
    resource = form.get("resource", "")
    if not resource:
        raise missing("resource")
    return resource


def _authenticate(state: StandinState, tenant: str, client_id: str, secret: str) -> AppRegistration:
    if not client_id:
        raise missing("client_id")
    app = state.app_registrations.find(client_id, tenant)
    if app is None:
        raise unknown_client(client_id, tenant)
    if not secret:
        raise Refused(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )
    if not app.accepts(secret):
        raise Refused(
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being "
            "sent in the request is the client secret value, not the client secret ID, for a secret "
            f"added to app '{app.client_id}'.",
        )
    return app


async def _grant(state: StandinState, request: Request, *, v1: bool) -> dict[str, Any]:
    tenant = request.path_params["tenant"]
    form = await _form(request)
    grant_type = form.get("grant_type", "")
    if not grant_type:
        raise missing("grant_type")
    if not v1 and grant_type == device_code.GRANT_TYPE:
        return device_code.device_code_grant(state, tenant, form)
    if not v1 and grant_type == "refresh_token":
        return delegated.refresh_token_grant(state, tenant, form)
    if grant_type != "client_credentials":
        raise Refused(
            400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant_type}'."
        )
    resource = _v1_resource(form) if v1 else _v2_resource(form)
    app = _authenticate(state, tenant, *_client_credentials(request, form))
    token = state.mint_app_token(tid=app.tenant_id, oid=app.object_id, client_id=app.client_id, resource=resource)
    # Entra reports one second less than the token's lifetime; v1 sends numbers as strings.
    expires_in = state.config.token_lifetime_seconds - 1
    if not v1:
        return {"token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in, "access_token": token}
    now = int(dt.datetime.now(dt.UTC).timestamp())
    return {
        "token_type": "Bearer",
        "expires_in": str(expires_in),
        "ext_expires_in": str(expires_in),
        "expires_on": str(now + expires_in),
        "not_before": str(now),
        "resource": resource,
        "access_token": token,
    }


def routes(state: StandinState) -> list[Route]:
    async def token(request: Request, *, v1: bool) -> Response:
        if not _known_tenant(request.path_params["tenant"]):
            return _tenant_error(request.path_params["tenant"])
        try:
            body = await _grant(state, request, v1=v1)
        except Refused as refused:
            return error_response(state, refused)
        return JSONResponse(body, headers=NO_STORE)

    async def token_v2(request: Request) -> Response:
        return await token(request, v1=False)

    async def token_v1(request: Request) -> Response:
        return await token(request, v1=True)

    return [Route(V2_PATH, token_v2, methods=["POST"]), Route(V1_PATH, token_v1, methods=["POST"])]
