"""HTTP plumbing shared by every handler: bounded JSON bodies, bearer tokens, error mapping."""

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from core.errors import (
    AuthenticationFailed,
    InvalidRequest,
    LiutongError,
    PayloadTooLarge,
    UnsupportedMediaType,
)

logger = logging.getLogger("liutong.http")

Handler = Callable[[Request], Awaitable[Response]]

# A JWT longer than this is not a token Entra issues; refuse before parsing it.
MAX_BEARER_TOKEN_CHARS = 16 * 1024


def check_fields(body: dict[str, Any], allowed: set[str]) -> None:
    """Refuses a field the endpoint does not know, rather than silently ignoring a misspelt option."""
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidRequest("Unknown field in request body.", param=unknown[0][:64], code="unknown_field")


def optional_flag(body: dict[str, Any], name: str) -> bool:
    """A JSON boolean, false when absent; "true", 1 or null are refused, not guessed at."""
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise InvalidRequest(f"'{name}' must be true or false.", param=name)
    return value


def error_response(error: LiutongError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status_code, headers=error.headers)


def endpoint(handler: Handler) -> Handler:
    """Map the exception tree to OpenAI-style error bodies; never leak an unexpected error."""

    @functools.wraps(handler)
    async def wrapper(req: Request) -> Response:
        try:
            return await handler(req)
        except LiutongError as error:
            if error.status_code >= 500:
                logger.warning("%s %s -> %s (%s)", req.method, req.url.path, error.status_code, error.code)
            return error_response(error)
        except Exception as error:  # noqa: BLE001 - logged with its traceback by unexpected_error_response
            return unexpected_error_response(req, error)

    return wrapper


def unexpected_error_response(req: Request, error: Exception) -> JSONResponse:
    """A 500 that names nothing of the error to the caller; the log has its type and traceback."""
    logger.error("%s %s -> 500 unhandled %s", req.method, req.url.path, type(error).__name__, exc_info=error)
    return error_response(LiutongError("The server had an error processing the request."))


async def read_body(req: Request, *, max_bytes: int) -> bytes:
    declared = req.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise InvalidRequest("Invalid Content-Length header.")
        if int(declared) > max_bytes:
            raise PayloadTooLarge(f"Request body exceeds {max_bytes} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in req.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"Request body exceeds {max_bytes} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json_object(req: Request, *, max_bytes: int) -> dict[str, Any]:
    content_type = req.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type not in ("application/json", "text/json", ""):
        raise UnsupportedMediaType("Content-Type must be application/json.")
    raw = await read_body(req, max_bytes=max_bytes)
    if not raw.strip():
        raise InvalidRequest("Request body must be a JSON object.")
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise InvalidRequest("Request body is not valid JSON.") from None
    if not isinstance(value, dict):
        raise InvalidRequest("Request body must be a JSON object.")
    return value


def bearer_token(req: Request) -> str:
    header = req.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationFailed("Missing bearer token.", code="missing_token")
    if len(token) > MAX_BEARER_TOKEN_CHARS:
        raise AuthenticationFailed("Bearer token is too large.", code="invalid_token")
    return token
