"""The Responses event stream tap: passes bytes through unchanged, finds the usage however the reads split."""

from __future__ import annotations

import itertools

import orjson
from hypothesis import given
from hypothesis import strategies as st

from proxy.accounting import from_usage
from proxy.responses import ResponsesTap

USAGE = {"input_tokens": 12, "output_tokens": 9, "total_tokens": 21, "input_tokens_details": {"cached_tokens": 4},
         "output_tokens_details": {"reasoning_tokens": 5}}


def event(kind: str, **fields: object) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **fields}) + b"\n\n"


STREAM = b"".join([
    event("response.created", response={"id": "r", "usage": None}),
    event("response.output_text.delta", delta="Hé \"quoted\""),
    event("response.output_text.delta", delta="response.completed"),  # model text naming a terminal event
    event("response.completed", response={"id": "r", "output": [{"text": "Hé"}], "usage": USAGE}),
])


@given(st.lists(st.integers(1, len(STREAM) - 1), max_size=8))
def test_any_split_passes_every_byte_and_finds_the_usage(cuts: list[int]) -> None:
    tap = ResponsesTap()
    edges = [0, *sorted(set(cuts)), len(STREAM)]
    out = b"".join(tap.feed(STREAM[a:b]) for a, b in itertools.pairwise(edges))
    assert out == STREAM and tap.saw_done and tap.usage == USAGE
    assert tap.output_chars == len('Hé "quoted"') + len("response.completed")


def test_a_stream_without_its_terminal_event_has_no_usage_but_counts_text() -> None:
    tap = ResponsesTap()
    tap.feed(event("response.output_text.delta", delta="four"))
    assert tap.usage is None and not tap.saw_done and tap.output_chars == 4 and tap.saw_output


def test_responses_usage_reads_like_chat_usage() -> None:
    tokens = from_usage(USAGE)
    assert tokens is not None
    assert (tokens.prompt, tokens.cached, tokens.completion, tokens.total, tokens.reasoning) == (12, 4, 9, 21, 5)
    details = {"reasoning_tokens": 9}
    chat = from_usage({"prompt_tokens": 3, "completion_tokens": 2, "completion_tokens_details": details})
    assert chat is not None and chat.reasoning == 2 and chat.total == 5  # never more than the completion
    assert from_usage({"output_tokens": 3}) is None
