"""The local host: the same route table as function_app.py, mounted in Starlette for uvicorn."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

import services
from core.errors import LiutongError, MethodNotAllowed, NotFound
from core.http import Handler, error_response, unexpected_error_response
from core.metrics_export import PROMETHEUS_CONTENT_TYPE
from core.settings import Settings
from routes import ROUTES, RouteSpec

# No access log: it would record client IPs and the webhook URL with its secret. No X-Forwarded-For
# processing: nothing here uses the caller's address (privacy), and it is one middleware less per request.
# Oversized headers (a 100 KB bearer token) reach the handlers, which refuse them with a proper 401 body
# instead of uvicorn's bare 400.
UVICORN_OPTIONS: dict[str, Any] = {
    "access_log": False, "proxy_headers": False, "h11_max_incomplete_event_size": 256 * 1024,
}


class LocalApp(Starlette):
    """Starlette, with a direct way to the route table's fixed paths for their own methods.

    Such a request goes straight to its handler, which maps every error itself (core.http.endpoint). The
    Starlette layers it skips (two exception middlewares that also wrap every send of a stream, a regex match
    per route) cost about 8 µs of CPU per call, measured in-process, and more per streamed chunk.
    Everything else (lifespan, paths with parameters, HEAD, 404, 405, /metrics) takes Starlette's way.
    """

    def __init__(self, *, fixed: Iterable[RouteSpec], **options: Any) -> None:
        super().__init__(**options)
        self._fixed: dict[tuple[str, str], Handler] = {
            (method, spec.path): spec.handler for spec in fixed if "{" not in spec.path for method in spec.methods
        }

    def direct_handler(self, method: str, path: str) -> Handler | None:
        return self._fixed.get((method, path))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self._fixed.get((scope["method"], scope["path"])) if scope["type"] == "http" else None
        if handler is None:
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        request = Request(scope, receive)
        try:
            response = await handler(request)
        except Exception as error:  # noqa: BLE001 - Starlette's ServerErrorMiddleware caught these; logged by unexpected_error_response
            response = unexpected_error_response(request, error)
        await response(scope, receive, send)


def build_app(settings: Settings) -> LocalApp:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        built = await services.Services.create(settings)
        services.install(built)
        services.freeze_startup_heap()
        try:
            yield
        finally:
            services.install(None)
            await built.close()

    routes = [Route(spec.path, spec.handler, methods=list(spec.methods)) for spec in ROUTES]
    # Here only, never in routes.py: the Functions app has no /metrics (it exports to Azure Monitor).
    routes.append(Route("/metrics", prometheus_metrics, methods=["GET"]))
    return LocalApp(
        fixed=ROUTES,
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
    )


async def prometheus_metrics(request: Request) -> Response:
    """The Prometheus text exposition, when LIUTONG_METRICS_EXPORTER=prometheus; 404 otherwise."""
    runtime = (await services.get_services()).metrics
    text = runtime.prometheus_text() if runtime is not None else None
    if text is None:
        return error_response(NotFound("Metrics are not exported to Prometheus here (LIUTONG_METRICS_EXPORTER)."))
    return Response(text, media_type=PROMETHEUS_CONTENT_TYPE)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    error: LiutongError
    if exc.status_code == 405:
        error = MethodNotAllowed(f"Method {request.method} is not allowed here.")
    elif exc.status_code == 404:
        error = NotFound(f"No route for {request.url.path}.")
    else:
        error = LiutongError(str(exc.detail))
        error.status_code = exc.status_code
    return error_response(error)
