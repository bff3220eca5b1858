"""The SSE tap on its own: any split of the upstream bytes gives the same events and the same usage."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.sse import SseUsageTap


def frame(body: Any) -> bytes:
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def chunk(content: str | None, *, usage_null: bool) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    body: dict[str, Any] = {"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
    if usage_null:
        body["usage"] = None
    return body


USAGE = {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14, "prompt_tokens_details": {"cached_tokens": 2}}
WORDS = ["Hel", "lo", ' "usage":null, \\"usage\\":null']


def upstream(*, usage_null: bool) -> bytes:
    frames = [frame(chunk(w, usage_null=usage_null)) for w in WORDS] + [frame(chunk(None, usage_null=usage_null))]
    if usage_null:
        frames.append(frame({"id": "c1", "object": "chat.completion.chunk", "choices": [], "usage": USAGE}))
    return b"".join(frames) + b": keep-alive\n\n" + b"data: [DONE]\n\n"


def feed_in_pieces(tap: SseUsageTap, data: bytes, cuts: list[int]) -> bytes:
    out, start = [], 0
    for cut in [*sorted(set(cuts)), len(data)]:
        out.append(tap.feed(data[start:cut]))
        start = cut
    return b"".join(out)


@given(st.lists(st.integers(min_value=0, max_value=len(upstream(usage_null=True))), max_size=12))
def test_caller_without_usage_sees_what_openai_would_send_it(cuts: list[int]) -> None:
    tap = SseUsageTap(caller_wants_usage=False)
    seen = feed_in_pieces(tap, upstream(usage_null=True), cuts)
    assert seen == upstream(usage_null=False)
    assert tap.usage == USAGE and tap.saw_done
    assert tap.output_chars == sum(len(w) for w in WORDS)


@given(st.lists(st.integers(min_value=0, max_value=len(upstream(usage_null=True))), max_size=12))
def test_caller_with_usage_sees_the_upstream_unchanged(cuts: list[int]) -> None:
    tap = SseUsageTap(caller_wants_usage=True)
    assert feed_in_pieces(tap, upstream(usage_null=True), cuts) == upstream(usage_null=True)
    assert tap.usage == USAGE


def test_crlf_events_and_running_usage_totals() -> None:
    tap = SseUsageTap(caller_wants_usage=True)
    first = {"choices": [{"index": 0, "delta": {"content": "ab"}}], "usage": {"prompt_tokens": 5, "total_tokens": 6}}
    last = {"choices": [{"index": 0, "delta": {"content": "cd"}}], "usage": {"prompt_tokens": 5, "total_tokens": 7}}
    data = (frame(first) + frame(last)).replace(b"\n", b"\r\n")
    out = tap.feed(data[:7]) + tap.feed(data[7:])
    assert out == frame(first) + frame(last)
    assert tap.usage == last["usage"]  # the latest report, never a sum


@pytest.mark.parametrize(
    ("event", "saw_error"),
    [(b'data: {"error":{"message":"x"}}\n\n', True), (b"data: not json\n\n", False), (b"event: ping\n\n", False)],
)
def test_odd_events_pass_through(event: bytes, saw_error: bool) -> None:
    tap = SseUsageTap(caller_wants_usage=False)
    assert tap.feed(event) == event and tap.saw_error is saw_error and tap.usage is None


def test_multiline_data_is_joined() -> None:
    tap = SseUsageTap(caller_wants_usage=False)
    event = b'data: {"choices":[],\ndata: "usage":{"prompt_tokens":1,"total_tokens":1}}\n\n'
    assert tap.feed(event) == b""
    assert tap.usage == {"prompt_tokens": 1, "total_tokens": 1}


TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)


def rich_chunk(content: str, refusal: str, arguments: str) -> dict[str, Any]:
    delta: dict[str, Any] = {"content": content, "refusal": refusal}
    delta["tool_calls"] = [{"index": 0, "function": {"name": "f", "arguments": arguments}}]
    logprobs = {"content": [{"token": content, "logprob": -0.1, "bytes": [1]}], "refusal": None}
    return {"id": "c1", "choices": [{"index": 0, "delta": delta, "logprobs": logprobs}], "usage": None}


@given(st.lists(st.tuples(TEXT, TEXT, TEXT), max_size=6), st.booleans())
def test_text_characters_are_counted_exactly_whatever_the_text(
    parts: list[tuple[str, str, str]], ascii_only: bool
) -> None:
    events = [
        b"data: " + json.dumps(rich_chunk(*p), ensure_ascii=ascii_only, separators=(",", ":")).encode() + b"\n\n"
        for p in parts
    ]
    tap = SseUsageTap(caller_wants_usage=False)
    seen = b"".join(tap.feed(event) for event in events)
    assert tap.output_chars == sum(len(text) for p in parts for text in p)
    assert b'"usage"' not in seen and tap.usage is None and not tap.saw_done
    assert [json.loads(e[6:]) for e in seen.split(b"\n\n")[:-1]] == [
        {k: v for k, v in rich_chunk(*p).items() if k != "usage"} for p in parts
    ]


def test_spaced_json_is_handled_like_compact_json() -> None:
    spaced = b'data: {"choices": [{"index": 0, "delta": {"content": "abc"}}], "usage" : null}\n\n'
    usage = b'data: {"choices": [], "usage" : {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}}\n\n'
    tap = SseUsageTap(caller_wants_usage=False)
    assert tap.feed(spaced + usage) == b'data: {"choices": [{"index": 0, "delta": {"content": "abc"}}]}\n\n'
    assert tap.output_chars == 3 and tap.usage == {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}
