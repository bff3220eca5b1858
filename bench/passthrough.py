"""The floor: the least a Python ASGI proxy can do, to set Liutong's own cost apart from the framework's.

A Starlette app with one route, POST /v1/chat/completions, that forwards the body to the upstream with one
pooled aiohttp session (the same pool settings as Liutong's UpstreamClient) and answers with the
upstream's status and body; streamed answers are passed through chunk by chunk. No auth, no limits, no
usage, no JSON parsing. Served under uvicorn with Liutong's local server options (localdev.server); its
startup heap is frozen out of full collections, as Liutong's is.

    python -m bench.passthrough --upstream http://127.0.0.1:7073 --port 7080
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from localdev.server import UVICORN_OPTIONS
from proxy.forwarding import DEFAULT_MAX_CONNECTIONS, KEEPALIVE_SECONDS
from services import freeze_startup_heap

CHAT = "/v1/chat/completions"


def build_app(upstream: str) -> Starlette:
    """`upstream` is the base URL without /v1 (e.g. http://127.0.0.1:7073)."""
    url = upstream.rstrip("/") + CHAT
    sessions: list[aiohttp.ClientSession] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(
            limit=DEFAULT_MAX_CONNECTIONS, limit_per_host=0, keepalive_timeout=KEEPALIVE_SECONDS
        )
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as session:
            sessions.append(session)
            freeze_startup_heap()  # as Liutong's worker does once started
            yield
            sessions.clear()

    async def chat_completions(request: Request) -> Response:
        body = await request.body()
        upstream_response = await sessions[0].post(url, data=body, headers={"content-type": "application/json"})
        return await _relay(upstream_response)

    return Starlette(routes=[Route(CHAT, chat_completions, methods=["POST"])], lifespan=lifespan)


async def _relay(upstream: aiohttp.ClientResponse) -> Response:
    media_type = upstream.headers.get("content-type")
    if media_type is not None and media_type.startswith("text/event-stream"):
        return StreamingResponse(_chunks(upstream), status_code=upstream.status, media_type=media_type)
    try:
        content = await upstream.read()
    finally:
        upstream.release()
    return Response(content, status_code=upstream.status, media_type=media_type)


async def _chunks(upstream: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    try:
        async for chunk in upstream.content.iter_any():
            yield chunk
    finally:
        upstream.release()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="the upstream's base URL, without /v1")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7080)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    uvicorn.run(build_app(args.upstream), host=args.host, port=args.port, log_level=args.log_level,
                **UVICORN_OPTIONS)


if __name__ == "__main__":
    main()
