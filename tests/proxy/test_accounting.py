"""Usage of non-streamed answers: large answers are read from their tail, with the same result as a full parse."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from proxy.accounting import PARSE_WHOLE_BELOW_BYTES, Tokens, estimated, from_response, from_usage

USAGE = {"prompt_tokens": 800, "total_tokens": 800, "prompt_tokens_details": {"cached_tokens": 64}}
PADDING = [{"object": "embedding", "index": n, "embedding": [0.123456] * 64} for n in range(80)]


def body(members: list[tuple[str, Any]], *, spaced: bool = False) -> bytes:
    separators = (", ", ": ") if spaced else (",", ":")
    return json.dumps(dict(members), separators=separators).encode()


def full_parse(raw: bytes) -> Tokens | None:
    return from_usage(json.loads(raw).get("usage"))


def test_a_large_embeddings_answer_bills_its_usage() -> None:
    raw = body([("object", "list"), ("data", PADDING), ("model", "emb"), ("usage", USAGE)])
    assert len(raw) > PARSE_WHOLE_BELOW_BYTES
    assert from_response(raw, 5) == Tokens(prompt=800, cached=64, completion=0, total=800)


MEMBER_VALUES = st.one_of(
    st.integers(), st.text(max_size=8), st.none(),
    st.fixed_dictionaries({"usage": st.fixed_dictionaries({"prompt_tokens": st.integers(0, 9)})}),
)


@given(
    before=st.lists(st.tuples(st.sampled_from(["id", "model", "meta", "x"]), MEMBER_VALUES), max_size=3),
    after=st.lists(st.tuples(st.sampled_from(["service_tier", "fp", "extra", "y"]), MEMBER_VALUES), max_size=3),
    usage=st.one_of(st.none(), st.just(USAGE), st.fixed_dictionaries({"prompt_tokens": st.integers(-1, 99)})),
    spaced=st.booleans(),
)
def test_the_tail_read_agrees_with_a_full_parse(
    before: list[tuple[str, Any]], after: list[tuple[str, Any]], usage: dict[str, Any] | None, spaced: bool
) -> None:
    members = [*before, ("data", PADDING)] + ([("usage", usage)] if usage is not None else []) + after
    raw = body(members, spaced=spaced)
    assert from_response(raw, 7) == (full_parse(raw) or estimated(7, 0))


def test_usage_inside_a_later_member_is_not_taken_for_the_answers_own() -> None:
    raw = body([("data", PADDING), ("usage", USAGE), ("meta", {"usage": {"prompt_tokens": 1}})])
    assert from_response(raw, 7) == Tokens(prompt=800, cached=64, completion=0, total=800)


def test_a_large_answer_without_usage_is_estimated_from_its_text() -> None:
    choices = [{"index": 0, "message": {"role": "assistant", "content": "x" * 40_000}}]
    raw = body([("choices", choices), ("object", "usage")])
    assert from_response(raw, 3) == estimated(3, 40_000)
