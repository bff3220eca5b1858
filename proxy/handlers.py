"""HTTP handlers of the OpenAI-compatible surface: authenticate, read the bounded body, map the result."""

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from core.errors import InvalidRequest, MethodNotAllowed, PayloadTooLarge
from core.http import bearer_token, endpoint, read_body
from proxy.media import AudioStreamingResponse, MediaCalls, MediaResult
from proxy.service import JsonResult, ProxyService, StreamResult
from proxy.streaming import MeteredStreamingResponse
from services import get_services


async def get_proxy_service() -> ProxyService:
    return (await get_services()).proxy


def _response(result: JsonResult | StreamResult) -> Response:
    if isinstance(result, StreamResult):
        return MeteredStreamingResponse(result.relay, headers=result.headers)
    return Response(result.body, media_type="application/json", headers=result.headers)


@endpoint
async def chat_completions(req: Request) -> Response:
    service = await get_proxy_service()
    principal = await service.authenticate(bearer_token(req))
    raw = await read_body(req, max_bytes=service.max_body_bytes)
    return _response(await service.chat_completions(principal, raw, req.headers.get("content-type")))


@endpoint
async def embeddings(req: Request) -> Response:
    service = await get_proxy_service()
    principal = await service.authenticate(bearer_token(req))
    raw = await read_body(req, max_bytes=service.max_body_bytes)
    return _response(await service.embeddings(principal, raw, req.headers.get("content-type")))


@endpoint
async def responses(req: Request) -> Response:
    service = await get_proxy_service()
    principal = await service.authenticate(bearer_token(req))
    raw = await read_body(req, max_bytes=service.max_body_bytes)
    return _response(await service.responses(principal, raw, req.headers.get("content-type")))


@endpoint
async def list_models(req: Request) -> Response:
    service = await get_proxy_service()
    principal = await service.authenticate(bearer_token(req))
    return JSONResponse(service.list_models(principal))


@endpoint
async def usage_summary(req: Request) -> Response:
    """The caller's own month to date (proxy.account); takes no parameters."""
    if req.method != "GET":  # Starlette also routes HEAD to a GET route; the Functions host does not
        raise MethodNotAllowed(f"Method {req.method} is not allowed here.")
    services = await get_services()
    principal = await services.proxy.authenticate(bearer_token(req))
    if req.query_params:
        name = next(iter(req.query_params))[:64]
        raise InvalidRequest("This endpoint takes no query parameters.", param=name, code="unknown_parameter")
    return JSONResponse(await services.account.summary(principal), headers={"cache-control": "no-store"})


def _media(result: MediaResult) -> Response:
    return Response(result.body, media_type=result.media_type, headers=result.headers)


@endpoint
async def image_generations(req: Request) -> Response:
    service = await get_proxy_service()
    principal = await service.authenticate(bearer_token(req))
    raw = await read_body(req, max_bytes=service.max_body_bytes)
    return _media(await MediaCalls(service).images(principal, raw, req.headers.get("content-type")))


@endpoint
async def audio_transcriptions(req: Request) -> Response:
    service = await get_proxy_service()
    principal = await service.authenticate(bearer_token(req))
    try:
        raw = await read_body(req, max_bytes=service.max_upload_bytes)
    except PayloadTooLarge as error:
        raise PayloadTooLarge(error.message, param="file", code="file_too_large") from None
    return _media(await MediaCalls(service).transcriptions(principal, raw, req.headers.get("content-type")))


@endpoint
async def audio_speech(req: Request) -> Response:
    service = await get_proxy_service()
    principal = await service.authenticate(bearer_token(req))
    raw = await read_body(req, max_bytes=service.max_body_bytes)
    return AudioStreamingResponse(await MediaCalls(service).speech(principal, raw, req.headers.get("content-type")))
