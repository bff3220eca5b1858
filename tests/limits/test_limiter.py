"""RPM/TPM per key: exact at 100 %, OpenAI's 429 and x-ratelimit-* headers, refill on an injected clock."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import RateLimited
from limits.plans import Plan
from limits.ratelimit import RateLimiter, format_duration


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_plan(**overrides: Any) -> Plan:
    values: dict[str, Any] = {"plan_id": "p", "models": ["m"]}
    values.update(overrides)
    return Plan.model_validate(values)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def limiter(clock: Clock) -> RateLimiter:
    return RateLimiter(clock=clock)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (-1, "0s"),
        (0.02, "20ms"),
        (0.0004, "1ms"),
        (0.9991, "1s"),
        (1, "1s"),
        (1.5, "1.5s"),
        (8.64, "8.64s"),
        (60, "1m0s"),
        (360, "6m0s"),
        (61.25, "1m1.25s"),
    ],
)
def test_durations_use_openais_format(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_rpm_admits_exactly_the_limit_then_429s_with_headers(limiter: RateLimiter) -> None:
    plan = make_plan(rpm=3)
    remaining = [limiter.take("k", plan, 0).headers["x-ratelimit-remaining-requests"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    with pytest.raises(RateLimited) as refused:
        limiter.take("k", plan, 0)
    error = refused.value
    assert error.status_code == 429
    assert error.body()["error"]["type"] == "requests"
    assert error.body()["error"]["code"] == "rate_limit_exceeded"
    # One request refills every 60/3 = 20 s.
    assert error.headers["retry-after"] == "20"
    assert error.headers["retry-after-ms"] == "20000"
    assert error.headers["x-ratelimit-limit-requests"] == "3"
    assert error.headers["x-ratelimit-remaining-requests"] == "0"
    assert error.headers["x-ratelimit-reset-requests"] == "1m0s"
    assert "x-ratelimit-limit-tokens" not in error.headers


def test_buckets_refill_with_time_and_never_above_the_limit(limiter: RateLimiter, clock: Clock) -> None:
    plan = make_plan(rpm=3)
    for _ in range(3):
        limiter.take("k", plan, 0)
    clock.now += 19.999
    with pytest.raises(RateLimited) as refused:
        limiter.take("k", plan, 0)
    assert refused.value.headers["retry-after-ms"] == "1"
    clock.now += 0.001
    assert limiter.take("k", plan, 0).headers["x-ratelimit-remaining-requests"] == "0"
    clock.now += 3600
    headers = limiter.take("k", plan, 0).headers
    assert headers["x-ratelimit-remaining-requests"] == "2"
    assert headers["x-ratelimit-reset-requests"] == "20s"


def test_tpm_passes_a_call_that_uses_exactly_what_is_left(limiter: RateLimiter) -> None:
    plan = make_plan(tpm=100)
    assert limiter.take("k", plan, 90).headers["x-ratelimit-remaining-tokens"] == "10"
    ticket = limiter.take("k", plan, 10)
    assert ticket.headers["x-ratelimit-remaining-tokens"] == "0"
    assert ticket.headers["x-ratelimit-reset-tokens"] == "1m0s"
    with pytest.raises(RateLimited) as refused:
        limiter.take("k", plan, 1)
    assert refused.value.body()["error"]["type"] == "tokens"
    assert refused.value.headers["retry-after-ms"] == "600"
    assert refused.value.headers["retry-after"] == "1"
    assert "Limit 100, Remaining 0, Requested 1" in refused.value.message


def test_a_call_bigger_than_what_is_left_waits_for_it(limiter: RateLimiter, clock: Clock) -> None:
    plan = make_plan(tpm=600)
    limiter.take("k", plan, 590)
    with pytest.raises(RateLimited) as refused:
        limiter.take("k", plan, 20)
    assert refused.value.headers["retry-after-ms"] == "1000"  # 10 more tokens at 10 tokens/s
    clock.now += 1
    limiter.take("k", plan, 20)


def test_a_call_bigger_than_the_whole_tpm_is_not_worth_retrying(limiter: RateLimiter) -> None:
    with pytest.raises(RateLimited) as refused:
        limiter.take("k", make_plan(tpm=100), 101)
    assert refused.value.headers["x-should-retry"] == "false"
    assert "Request too large" in refused.value.message


def test_a_refused_call_takes_nothing(limiter: RateLimiter) -> None:
    plan = make_plan(rpm=2, tpm=100)
    limiter.take("k", plan, 100)
    with pytest.raises(RateLimited) as refused:
        limiter.take("k", plan, 1)
    assert refused.value.headers["x-ratelimit-remaining-requests"] == "1"
    assert limiter.take("k", plan, 0).headers["x-ratelimit-remaining-requests"] == "0"


def test_settle_corrects_the_estimate_both_ways(limiter: RateLimiter, clock: Clock) -> None:
    plan = make_plan(tpm=600)
    ticket = limiter.take("k", plan, 500)
    limiter.correct(ticket, 200)
    ticket = limiter.take("k", plan, 0)
    assert ticket.headers["x-ratelimit-remaining-tokens"] == "400"
    # Used more than estimated: the bucket goes into debt and the next call waits for it.
    limiter.correct(ticket, 700)
    with pytest.raises(RateLimited) as refused:
        limiter.take("k", plan, 1)
    assert refused.value.headers["retry-after-ms"] == "30100"  # 301 tokens at 10/s
    clock.now += 30.1
    limiter.take("k", plan, 1)


def test_give_back_returns_tokens_and_optionally_the_request(limiter: RateLimiter) -> None:
    plan = make_plan(rpm=5, tpm=100)
    ticket = limiter.take("k", plan, 70)
    limiter.give_back(ticket, request=False)
    headers = limiter.take("k", plan, 0).headers
    assert (headers["x-ratelimit-remaining-requests"], headers["x-ratelimit-remaining-tokens"]) == ("3", "100")
    limiter.give_back(limiter.take("k", plan, 50), request=True)
    headers = limiter.take("k", plan, 0).headers
    assert (headers["x-ratelimit-remaining-requests"], headers["x-ratelimit-remaining-tokens"]) == ("2", "100")


def test_keys_have_their_own_buckets(limiter: RateLimiter) -> None:
    plan = make_plan(rpm=1)
    limiter.take("a", plan, 0)
    limiter.take("b", plan, 0)
    with pytest.raises(RateLimited):
        limiter.take("a", plan, 0)


def test_headers_only_for_the_limits_a_plan_has(limiter: RateLimiter) -> None:
    assert limiter.take("k", make_plan(), 10).headers == {}
    assert set(limiter.take("j", make_plan(tpm=50), 10).headers) == {
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
    }


def test_a_plan_change_applies_to_existing_buckets(limiter: RateLimiter) -> None:
    limiter.take("k", make_plan(rpm=10), 0)
    headers = limiter.take("k", make_plan(rpm=2), 0).headers
    assert (headers["x-ratelimit-limit-requests"], headers["x-ratelimit-remaining-requests"]) == ("2", "1")


def test_idle_full_buckets_are_pruned(clock: Clock) -> None:
    limiter = RateLimiter(clock=clock, prune_above=2)
    plan = make_plan(rpm=1)
    limiter.take("a", plan, 0)
    limiter.take("b", plan, 0)
    clock.now += 60
    limiter.take("c", plan, 0)
    assert set(limiter._keys) == {"c"}
