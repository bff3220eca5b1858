"""The stand-in's ASGI application: OIDC metadata, the managed-identity endpoint and ARM."""

from __future__ import annotations

from starlette.applications import Starlette

from localdev.standin import arm, msi, oidc
from localdev.standin.state import StandinState


def create_app(state: StandinState) -> Starlette:
    # ARM's catch-all route must come last.
    app = Starlette(routes=[*msi.routes(state), *oidc.routes(state), *arm.routes(state)])
    app.state.standin = state
    return app
