"""App Service's managed-identity endpoint (IDENTITY_ENDPOINT / IDENTITY_HEADER, api-version 2019-08-01)."""

from __future__ import annotations

import hmac
import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from localdev.standin.identities import SELECTORS, ManagedIdentity
from localdev.standin.state import StandinState

API_VERSION = "2019-08-01"
PATH = "/msi/token"
# Spellings other hosts use; App Service ignores them and answers for the wrong identity: refuse loudly.
_FOREIGN_SELECTORS = ("resource_id", "msi_res_id", "clientid")


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str) -> Response:
    return JSONResponse(
        {"statusCode": status, "message": message, "correlationId": str(uuid.uuid4())}, status_code=status
    )


def _check_secret(state: StandinState, request: Request) -> None:
    presented = request.headers.get("x-identity-header")
    if presented is None:
        raise _Refused(400, "The X-IDENTITY-HEADER header is required.")
    if not hmac.compare_digest(presented.encode(), state.config.identity_header.encode()):
        raise _Refused(401, "The X-IDENTITY-HEADER header is invalid.")


def _selected_identity(state: StandinState, request: Request) -> ManagedIdentity:
    params = request.query_params
    foreign = [name for name in _FOREIGN_SELECTORS if name in params]
    if foreign:
        raise _Refused(
            400, f"Unsupported parameter {foreign[0]!r}; App Service selects by {', '.join(SELECTORS)}."
        )
    chosen = [(name, params[name]) for name in SELECTORS if params.get(name)]
    if len(chosen) > 1:
        raise _Refused(400, f"Only one of {', '.join(SELECTORS)} may be given.")
    if not chosen:
        return state.identities.default
    identity = state.identities.find(*chosen[0])
    if identity is None:
        raise _Refused(400, "Unable to load the proper Managed Identity.")
    return identity


def routes(state: StandinState) -> list[Route]:
    async def token(request: Request) -> Response:
        try:
            _check_secret(state, request)
            if request.query_params.get("api-version") != API_VERSION:
                raise _Refused(400, f"The api-version must be {API_VERSION}.")
            resource = request.query_params.get("resource")
            if not resource:
                raise _Refused(400, "The resource parameter is required.")
            identity = _selected_identity(state, request)
        except _Refused as refused:
            return _error(refused.status, refused.message)
        access_token, expires_on = state.mint_for_identity(identity, resource)
        return JSONResponse(
            {
                "access_token": access_token,
                "expires_on": str(expires_on),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": identity.client_id,
            }
        )

    return [Route(PATH, token)]
