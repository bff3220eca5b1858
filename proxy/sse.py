"""Incremental reading of an upstream chat stream: pass events through, spot the usage chunk.

Events are released as soon as they are complete (never the whole response). When the caller did not
ask for usage, Liutong's forced `include_usage` must not show: the usage-only chunk (`choices: []`
with a `usage` object) is dropped and the `"usage":null` member OpenAI adds to every other chunk is
removed, so the caller receives exactly what OpenAI would have sent it.

Most events are text deltas with nothing to account but their characters (kept for the estimate of a
stream that breaks before its usage chunk). Those are handled a whole read at a time with a few regex
passes instead of one JSON parse per event: this tap runs for every event of every stream. Events are
parsed one by one only from the first that holds a usage object, an error or [DONE].
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from proxy.accounting import output_chars

EVENT_END = b"\n\n"
DONE = b"[DONE]"
_USAGE_NULL = re.compile(rb',\s*"usage"\s*:\s*null(?=\s*[,}])')
# Inside a JSON string a quote is escaped, so these keys can only match real members, never model text.
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
_OUTPUT_TEXT = re.compile(rb'"(?:content|refusal|arguments)"\s*:\s*"([^"\\]*(?:\\.[^"\\]*)*)"')


class SseUsageTap:
    def __init__(self, *, caller_wants_usage: bool) -> None:
        self._caller_wants_usage = caller_wants_usage
        self._pending = b""
        self.usage: Mapping[str, Any] | None = None
        self.output_chars = 0
        self.saw_done = False
        self.saw_error = False

    @property
    def saw_output(self) -> bool:
        return self.output_chars > 0 or self.usage is not None

    def feed(self, data: bytes) -> bytes:
        """The complete events in `data` (plus what was pending) as the caller should see them."""
        buffer = self._pending + data if self._pending else data
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        end = buffer.rfind(EVENT_END)
        if end < 0:
            self._pending = buffer
            return b""
        complete, self._pending = buffer[: end + 2], buffer[end + 2 :]
        split = _parsing_starts_at(complete)
        if split == 0:
            return self._parse_each(complete)
        text = complete if split == len(complete) else complete[:split]
        self.output_chars += text_chars(text)
        if not self._caller_wants_usage:
            text = _without_usage_null(text)
        return text if split == len(complete) else text + self._parse_each(complete[split:])

    def _parse_each(self, complete: bytes) -> bytes:
        events = complete.split(EVENT_END)[:-1]
        kept = [self._inspect(event) for event in events]
        if self._caller_wants_usage and all(k is e for k, e in zip(kept, events, strict=True)):
            return complete
        return b"".join(k + EVENT_END for k in kept if k is not None)

    def _inspect(self, event: bytes) -> bytes | None:
        payload = data_of(event)
        if payload is None:
            return event
        if payload == DONE:
            self.saw_done = True
            return event
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return event
        if not isinstance(chunk, dict):
            return event
        return self._account(event, chunk)

    def _account(self, event: bytes, chunk: dict[str, Any]) -> bytes | None:
        if chunk.get("error") is not None:
            self.saw_error = True
            return event
        choices = chunk.get("choices")
        if isinstance(choices, list):
            self.output_chars += sum(output_chars(c, "delta") for c in choices if isinstance(c, Mapping))
        usage = chunk.get("usage")
        if isinstance(usage, Mapping):
            # The latest report wins: providers that repeat usage send running totals, never increments.
            self.usage = usage
            if choices == [] and not self._caller_wants_usage:
                return None
        if not self._caller_wants_usage and usage is None and b'"usage"' in event:
            return _USAGE_NULL.sub(b"", event, count=1)
        return event


def _parsing_starts_at(events: bytes) -> int:
    """Where the first event holding a usage object, an error or [DONE] starts (len(events): none does).
    Upstreams that send fast put a whole answer in one read; only its end needs parsing."""
    at = len(events)
    for marker in (b"[DONE]", b'"error"'):
        found = events.find(marker, 0, at)
        if found >= 0:
            at = found
    usage = _USAGE_OBJECT.search(events, 0, at)
    if usage is not None:
        at = usage.start()
    if at == len(events):
        return at
    start = events.rfind(EVENT_END, 0, at)
    return 0 if start < 0 else start + len(EVENT_END)


def _without_usage_null(events: bytes) -> bytes:
    events = events.replace(b',"usage":null}', b"}").replace(b',"usage":null,', b",")  # compact JSON
    return _USAGE_NULL.sub(b"", events) if b'"usage"' in events else events


def text_chars(events: bytes, pattern: re.Pattern[bytes] = _OUTPUT_TEXT) -> int:
    """Characters of generated text (by default: content, refusal, tool call arguments) in complete events."""
    chars = 0
    for text in pattern.findall(events):
        if text.isascii() and b"\\" not in text:
            chars += len(text)
        else:
            try:
                chars += len(orjson.loads(b'"' + text + b'"'))
            except orjson.JSONDecodeError:
                chars += len(text)
    return chars


def data_of(event: bytes) -> bytes | None:
    """The data field of one event (None for comments and events without data)."""
    if event.startswith(b"data: ") and b"\n" not in event:
        return event[6:]
    lines = [line for line in event.split(b"\n") if line.startswith(b"data:")]
    if not lines:
        return None
    return b"\n".join(line[6:] if line.startswith(b"data: ") else line[5:] for line in lines)
