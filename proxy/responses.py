"""The Responses API (`POST /v1/responses`): the request fields Liutong acts on, and its event stream's usage.

Stateful features make the upstream keep content: `store` (the response and its input, kept for 30 days by
OpenAI), `previous_response_id` and `conversation` (which read what was stored) and `background` (which needs
`store`). A plan allows them only with `responses_store: "allow"`; otherwise `store: false` is sent on every
call and asking for any of them is refused before anything is admitted or billed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from core.errors import InvalidRequest, PermissionDenied
from limits.plans import Plan
from proxy.nature import RequestNature
from proxy.payloads import media_parts, optional_field, parse_object
from proxy.sse import EVENT_END, data_of, text_chars

RESPONSES_ENDPOINT = "/v1/responses"
_STATEFUL = ("previous_response_id", "conversation", "background")
# The events that end a response; each carries the response with its usage.
_TERMINAL_TYPES = ("response.completed", "response.incomplete", "response.failed")
_TERMINAL = tuple(b'"' + kind.encode() + b'"' for kind in _TERMINAL_TYPES)
_DELTA_TEXT = re.compile(rb'"delta"\s*:\s*"([^"\\]*(?:\\.[^"\\]*)*)"')


@dataclass
class ResponsesRequest:
    doc: dict[str, Any]
    raw: bytes
    model: str
    stream: bool
    max_output_tokens: int | None


def parse_responses(raw: bytes, content_type: str | None) -> ResponsesRequest:
    doc = parse_object(raw, content_type)
    model = doc.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("You must provide a model parameter.", param="model", code="invalid_type")
    value = doc.get("input")
    if value is not None and not isinstance(value, (str, list)):
        raise InvalidRequest("'input' must be a string or an array of input items.", param="input", code="invalid_type")
    stream = bool(optional_field(doc, "stream", bool, "a boolean"))
    for name in ("store", "background"):
        optional_field(doc, name, bool, "a boolean")
    max_output = optional_field(doc, "max_output_tokens", int, "an integer")
    if max_output is not None and max_output < 1:
        raise InvalidRequest("'max_output_tokens' must be at least 1.", param="max_output_tokens", code="invalid_value")
    return ResponsesRequest(doc=doc, raw=raw, model=model, stream=stream, max_output_tokens=max_output)


def responses_nature(request: ResponsesRequest, prompt: int) -> RequestNature:
    value = request.doc.get("input")
    images, audio = media_parts(value if isinstance(value, list) else [])
    return RequestNature(
        RESPONSES_ENDPOINT, prompt_tokens=prompt, max_output_tokens=request.max_output_tokens,
        has_images=images, has_audio=audio, has_tools=bool(request.doc.get("tools")),
    )


def responses_body(request: ResponsesRequest, upstream_model: str | None, plan: Plan) -> bytes:
    """The body to send; raises PermissionDenied when it asks for what the plan keeps the upstream from storing."""
    doc = request.doc
    changes: dict[str, Any] = {}
    if plan.responses_store != "allow":
        if doc.get("store") is True:
            raise PermissionDenied(
                "Your plan does not let the model provider store responses: set 'store' to false or leave it out.",
                param="store", code="store_not_allowed",
            )
        for name in _STATEFUL:
            if doc.get(name) not in (None, False):
                raise PermissionDenied(
                    f"'{name}' needs stored responses, which your plan does not allow.",
                    param=name, code="store_not_allowed",
                )
        if doc.get("store") is not False:
            changes["store"] = False  # OpenAI's default is true: never leave it to the default
    if upstream_model is not None and upstream_model != request.model:
        changes["model"] = upstream_model
    return orjson.dumps({**doc, **changes}) if changes else request.raw


class ResponsesTap:
    """Passes the Responses event stream through unchanged; keeps the usage of its terminal event.

    Text deltas are counted (for the estimate of a stream that breaks before its end) with one regex pass per
    read; only a terminal event, which holds the whole response, is parsed.
    """

    def __init__(self) -> None:
        self._pending = b""
        self.usage: Mapping[str, Any] | None = None
        self.output_chars = 0
        self.saw_done = False

    @property
    def saw_output(self) -> bool:
        return self.output_chars > 0 or self.usage is not None

    def feed(self, data: bytes) -> bytes:
        buffer = self._pending + data if self._pending else data
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        end = buffer.rfind(EVENT_END)
        if end < 0:
            self._pending = buffer
            return b""
        complete, self._pending = buffer[: end + 2], buffer[end + 2 :]
        if any(marker in complete for marker in _TERMINAL):
            for event in complete.split(EVENT_END)[:-1]:
                self._inspect(event)
        else:
            self.output_chars += text_chars(complete, _DELTA_TEXT)
        return complete

    def _inspect(self, event: bytes) -> None:
        payload = data_of(event)
        if payload is None:
            return
        parsed: Any = None
        if any(marker in payload for marker in _TERMINAL):
            try:
                parsed = orjson.loads(payload)
            except orjson.JSONDecodeError:
                return
        terminal = isinstance(parsed, dict) and parsed.get("type") in _TERMINAL_TYPES
        response = parsed.get("response") if terminal else None
        if not isinstance(response, dict):
            self.output_chars += text_chars(payload, _DELTA_TEXT)
            return
        self.saw_done = True
        usage = response.get("usage")
        if isinstance(usage, Mapping):
            self.usage = usage
