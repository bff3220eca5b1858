"""Request bodies of the proxied endpoints: parsed once, type-checked, rewritten only when needed.

Only the fields Liutong acts on are checked (model, stream, stream_options, token limits, input);
every other field goes to the upstream untouched and is the upstream's to validate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

from core.errors import InvalidRequest, UnsupportedMediaType
from proxy.nature import RequestNature

# Tokens are estimated before the call as OpenAI's own limiter does: about 4 bytes per token.
BYTES_PER_TOKEN = 4
_JSON_TYPES = ("application/json", "text/json", "")


@dataclass
class ChatRequest:
    doc: dict[str, Any]
    raw: bytes
    model: str
    stream: bool
    caller_wants_usage: bool
    max_completion_tokens: int | None
    choices: int


@dataclass
class EmbeddingsRequest:
    doc: dict[str, Any]
    raw: bytes
    model: str
    input_tokens: int | None  # exact when the input is already token IDs


def parse_object(raw: bytes, content_type: str | None) -> dict[str, Any]:
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type not in _JSON_TYPES:
        raise UnsupportedMediaType("Content-Type must be application/json.")
    try:
        value = orjson.loads(raw)
    except (orjson.JSONDecodeError, RecursionError):
        raise InvalidRequest("We could not parse the JSON body of your request.") from None
    if not isinstance(value, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return value


def _model(doc: dict[str, Any]) -> str:
    model = doc.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("You must provide a model parameter.", param="model", code="invalid_type")
    return model


def optional_field(doc: dict[str, Any], name: str, kind: type, what: str, *, param: str | None = None) -> Any:
    value = doc.get(name)
    param = param or name
    # bool is an int in Python, never in JSON Schema.
    if value is not None and (not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)):
        raise InvalidRequest(f"Invalid type for '{param}': expected {what}.", param=param, code="invalid_type")
    return value


def media_parts(messages: list[Any]) -> tuple[bool, bool]:
    """Whether chat messages or Responses input items carry image parts, audio parts (for auto mode)."""
    images = audio = False
    for item in messages:
        content = item.get("content") if isinstance(item, dict) else None
        for part in content if isinstance(content, list) else ():
            kind = part.get("type") if isinstance(part, dict) else None
            images = images or kind in ("image_url", "input_image")
            audio = audio or kind in ("input_audio", "audio")
    return images, audio


def chat_nature(request: ChatRequest, prompt: int) -> RequestNature:
    images, audio = media_parts(request.doc["messages"])
    tools = bool(request.doc.get("tools") or request.doc.get("functions"))
    return RequestNature(
        "/v1/chat/completions", prompt_tokens=prompt, max_output_tokens=request.max_completion_tokens,
        has_images=images, has_audio=audio, has_tools=tools,
    )


def _count(doc: dict[str, Any], name: str, *, minimum: int) -> int | None:
    value: int | None = optional_field(doc, name, int, "an integer")
    if value is not None and value < minimum:
        raise InvalidRequest(f"'{name}' must be at least {minimum}.", param=name, code="invalid_value")
    return value


def parse_chat(raw: bytes, content_type: str | None) -> ChatRequest:
    doc = parse_object(raw, content_type)
    model = _model(doc)
    messages = doc.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise InvalidRequest(
            "'messages' must be a non-empty array of message objects.", param="messages", code="invalid_type"
        )
    stream = bool(optional_field(doc, "stream", bool, "a boolean"))
    options = optional_field(doc, "stream_options", dict, "an object") or {}
    include_usage = optional_field(options, "include_usage", bool, "a boolean", param="stream_options.include_usage")
    max_tokens = _count(doc, "max_completion_tokens", minimum=0)
    legacy_max = _count(doc, "max_tokens", minimum=0)
    return ChatRequest(
        doc=doc, raw=raw, model=model, stream=stream, caller_wants_usage=include_usage is True,
        max_completion_tokens=max_tokens if max_tokens is not None else legacy_max,
        choices=_count(doc, "n", minimum=1) or 1,
    )


def _token_ids(value: list[Any]) -> int | None:
    if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return len(value)
    if all(isinstance(v, list) and v and all(isinstance(t, int) and not isinstance(t, bool) for t in v) for v in value):
        return sum(len(v) for v in value)
    return None


def parse_embeddings(raw: bytes, content_type: str | None) -> EmbeddingsRequest:
    doc = parse_object(raw, content_type)
    model = _model(doc)
    value = doc.get("input")
    if isinstance(value, str) and value:
        return EmbeddingsRequest(doc=doc, raw=raw, model=model, input_tokens=None)
    if isinstance(value, list) and value:
        if all(isinstance(v, str) for v in value):
            return EmbeddingsRequest(doc=doc, raw=raw, model=model, input_tokens=None)
        counted = _token_ids(value)
        if counted is not None:
            return EmbeddingsRequest(doc=doc, raw=raw, model=model, input_tokens=counted)
    raise InvalidRequest(
        "'input' must be a non-empty string, array of strings, or array of token arrays.",
        param="input", code="invalid_type",
    )


def estimate_tokens(raw: bytes) -> int:
    return max(1, math.ceil(len(raw) / BYTES_PER_TOKEN))


def upstream_body(request: ChatRequest | EmbeddingsRequest, upstream_model: str | None) -> bytes:
    """The body to send: the caller's bytes unchanged unless the model name or stream_options must change."""
    changes: dict[str, Any] = {}
    if upstream_model is not None and upstream_model != request.model:
        changes["model"] = upstream_model
    if isinstance(request, ChatRequest) and request.stream and not request.caller_wants_usage:
        # Always asked for, so a stream is billed from the upstream's own count.
        changes["stream_options"] = {**(request.doc.get("stream_options") or {}), "include_usage": True}
    if not changes:
        return request.raw
    return orjson.dumps({**request.doc, **changes})
