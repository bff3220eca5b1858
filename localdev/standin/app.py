"""The stand-in's ASGI application: OIDC metadata, Entra's token and device code endpoints (with the
device login page), the managed-identity endpoint, the Marketplace Metering Service, ARM."""

from __future__ import annotations

from starlette.applications import Starlette

from localdev.standin import arm, device_code, entra_token, metering, msi, oidc
from localdev.standin.state import StandinState


def create_app(state: StandinState) -> Starlette:
    # ARM's catch-all route must come last.
    app = Starlette(
        routes=[
            *msi.routes(state),
            *oidc.routes(state),
            *entra_token.routes(state),
            *device_code.routes(state),
            *metering.routes(state),
            *arm.routes(state),
        ]
    )
    app.state.standin = state
    return app
