"""Token counts of one call, from the upstream's own `usage` whenever it sent one.

`prompt_tokens` already includes `prompt_tokens_details.cached_tokens`, and `completion_tokens` includes
`completion_tokens_details.reasoning_tokens`; both are recorded beside, never added. The Responses API names
the same counts input_tokens/output_tokens (input_tokens_details, output_tokens_details): read alike.
A count not taken from the upstream is marked estimated.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from proxy.payloads import BYTES_PER_TOKEN

# Below this size parsing the whole answer is cheaper than finding its usage with the patterns below.
PARSE_WHOLE_BELOW_BYTES = 32 * 1024
_USAGE_KEY = re.compile(rb'"usage"\s*:\s*')
_STRING = rb'"[^"\\]*(?:\\.[^"\\]*)*"'
# A JSON object nested at most three deep (usage has one level of *_details objects).
_OBJECT = re.compile(
    rb"\{(?:[^{}\"]|" + _STRING + rb"|\{(?:[^{}\"]|" + _STRING + rb"|\{(?:[^{}\"]|" + _STRING + rb")*\})*\})*\}"
)
# What may follow a top-level member: more members with scalar values, then the outermost object's end.
_SCALAR_MEMBERS_TO_END = re.compile(
    rb"\s*(?:,\s*" + _STRING + rb"\s*:\s*(?:" + _STRING + rb"|[-+.\w]+)\s*)*\}\s*"
)


@dataclass(frozen=True)
class Tokens:
    prompt: int = 0
    cached: int = 0
    completion: int = 0
    total: int = 0
    estimated: bool = False
    reasoning: int = 0


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def from_usage(usage: object) -> Tokens | None:
    """The upstream's usage verbatim, or None when it sent none or an unusable one."""
    if not isinstance(usage, Mapping):
        return None
    chat = "prompt_tokens" in usage
    prompt = _count(usage.get("prompt_tokens" if chat else "input_tokens"))
    if prompt is None:
        return None
    completion = _count(usage.get("completion_tokens" if chat else "output_tokens")) or 0
    total = _count(usage.get("total_tokens"))
    cached = _detail(usage, "prompt_tokens_details" if chat else "input_tokens_details", "cached_tokens")
    reasoning = _detail(usage, "completion_tokens_details" if chat else "output_tokens_details", "reasoning_tokens")
    return Tokens(
        prompt=prompt,
        cached=min(cached, prompt),
        completion=completion,
        total=total if total is not None else prompt + completion,
        reasoning=min(reasoning, completion),
    )


def _detail(usage: Mapping[str, Any], details: str, name: str) -> int:
    found = usage.get(details)
    return (_count(found.get(name)) or 0) if isinstance(found, Mapping) else 0


def estimated(prompt: int, output_chars: int) -> Tokens:
    completion = math.ceil(output_chars / BYTES_PER_TOKEN)
    return Tokens(prompt=prompt, completion=completion, total=prompt + completion, estimated=True)


def output_chars(choice: Mapping[str, Any], part: str) -> int:
    """Characters of generated text in one choice's `message` (part="message") or stream `delta`."""
    body = choice.get(part)
    if not isinstance(body, Mapping):
        return 0
    chars = sum(len(body[name]) for name in ("content", "refusal") if isinstance(body.get(name), str))
    for call in body.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, Mapping) else None
        if isinstance(function, Mapping) and isinstance(function.get("arguments"), str):
            chars += len(function["arguments"])
    return chars


def from_response(body: bytes, prompt_estimate: int) -> Tokens:
    """Usage of a non-streamed answer; estimated from its text when the upstream reported none."""
    if len(body) >= PARSE_WHOLE_BELOW_BYTES:
        tokens = from_usage(_trailing_usage(body))
        if tokens is not None:
            return tokens
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        return estimated(prompt_estimate, 0)
    tokens = from_usage(parsed.get("usage"))
    if tokens is not None:
        return tokens
    choices = parsed.get("choices")
    if not isinstance(choices, list):
        choices = []
    chars = sum(output_chars(c, "message") for c in choices if isinstance(c, Mapping))
    return estimated(prompt_estimate, chars)


def _trailing_usage(body: bytes) -> Any:
    """The top-level `usage` object when it is the answer's last object member (where OpenAI puts it), read
    without parsing the rest: an embeddings answer of 100 vectors is 3 MB of JSON, ~16 ms to parse here.
    None when the layout differs; the caller then parses the whole answer."""
    at = body.rfind(b'"usage"')
    key = _USAGE_KEY.match(body, at) if at >= 0 else None
    found = _OBJECT.match(body, key.end()) if key else None
    if found is None or _SCALAR_MEMBERS_TO_END.fullmatch(body, found.end()) is None:
        return None
    try:
        return orjson.loads(found.group())
    except orjson.JSONDecodeError:
        return None
