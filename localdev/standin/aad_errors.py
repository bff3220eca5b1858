"""Entra's error bodies for its OAuth endpoints: AADSTS codes, trace and correlation IDs."""

from __future__ import annotations

import datetime as dt
import uuid

from starlette.responses import JSONResponse, Response

from localdev.standin.state import StandinState

NO_STORE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}


class Refused(Exception):
    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.code, self.description = status, error, code, description


def missing(name: str) -> Refused:
    return Refused(400, "invalid_request", 900144, f"The request body must contain the following parameter: '{name}'.")


def unknown_client(client_id: str, tenant: str) -> Refused:
    return Refused(
        400,
        "unauthorized_client",
        700016,
        f"Application with identifier '{client_id}' was not "
        f"found in the directory '{tenant}'. This can happen if the application has not been "
        "installed by the administrator of the tenant or consented to by any user in the tenant. "
        "You may have sent your authentication request to the wrong tenant.",
    )


def error_response(state: StandinState, refused: Refused) -> Response:
    trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
    timestamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    body = {
        "error": refused.error,
        "error_description": f"AADSTS{refused.code}: {refused.description} Trace ID: {trace_id} "
        f"Correlation ID: {correlation_id} Timestamp: {timestamp}",
        "error_codes": [refused.code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"{state.base_url}/error?code={refused.code}",
    }
    return JSONResponse(body, status_code=refused.status, headers=NO_STORE)
