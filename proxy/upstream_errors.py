"""Upstream failures as the caller sees them: OpenAI-style errors that never carry a credential."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from core.errors import LiutongError, UpstreamTimeout, UpstreamUnavailable

MAX_MESSAGE_CHARS = 1000
# Anything that looks like a key or token: provider keys (sk-…), Liutong keys (lt-…), bearer values, JWTs.
_SECRETS = re.compile(
    r"(?i)\b(?:sk|lt|rk|pk)-[A-Za-z0-9_\-]{6,}|bearer\s+\S+|eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-.]+"
    r"|\b[A-Fa-f0-9]{32,}\b"
)
_RETRY_HEADERS = ("retry-after", "retry-after-ms")
_ERROR_FIELDS = ("type", "param", "code")


class UpstreamError(LiutongError):
    """An OpenAI-shaped error from the upstream, passed back with its status."""

    def __init__(self, status: int, error: Mapping[str, Any], headers: dict[str, str]) -> None:
        fields = {name: _short_text(error.get(name)) for name in _ERROR_FIELDS}
        super().__init__(
            scrub(str(error["message"])), code=fields["code"], param=fields["param"], headers=headers
        )
        self.status_code = status
        self.error_type = fields["type"] or ("server_error" if status >= 500 else "invalid_request_error")


def scrub(message: str) -> str:
    return _SECRETS.sub("[redacted]", message)[:MAX_MESSAGE_CHARS]


def _short_text(value: object) -> str | None:
    return scrub(value) if isinstance(value, str) else None


def _openai_error(body: bytes) -> Mapping[str, Any] | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error
    return None


def from_status(status: int, body: bytes, headers: Mapping[str, str]) -> LiutongError:
    if status in (401, 403):
        # The upstream refused *Liutong's* credential: the caller's key is fine, and the upstream's
        # message may quote part of our key, so none of it is passed on.
        return UpstreamUnavailable(
            "The upstream model provider refused Liutong's credentials.", code="upstream_auth_failed"
        )
    error = _openai_error(body) if status >= 400 else None
    if error is None:
        return UpstreamUnavailable(
            f"The upstream model provider answered HTTP {status} without an OpenAI error.", code="bad_gateway"
        )
    retry = {name: headers[name] for name in _RETRY_HEADERS if name in headers}
    return UpstreamError(status, error, retry)


def unreachable(error: BaseException) -> LiutongError:
    if isinstance(error, TimeoutError):
        return UpstreamTimeout("The upstream model provider did not answer in time.")
    return UpstreamUnavailable(
        f"The upstream model provider is unreachable ({type(error).__name__}).", code="bad_gateway"
    )


def stream_error_event(error: LiutongError) -> bytes:
    """How an error reaches a caller once a stream has started: one SSE frame the openai SDK raises on."""
    return b"data: " + json.dumps(error.body(), separators=(",", ":")).encode() + b"\n\n"
