"""Liveness with storage reachability: 200 when Table Storage answers, 503 when it does not."""

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from core.errors import StorageUnavailable
from core.http import endpoint
from services import get_services


@endpoint
async def health(req: Request) -> Response:
    try:
        services = await get_services()
        await services.tables.ping()
    except StorageUnavailable:
        return JSONResponse({"status": "unhealthy", "storage": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ok", "storage": "ok"})
