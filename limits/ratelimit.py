"""Per-key RPM/TPM token buckets: in memory, per instance, no I/O on the hot path.

- A bucket holds up to `limit` units and refills continuously at `limit` per minute; the `x-ratelimit-reset-*`
  headers say how long until it is full again (OpenAI's model).
- A call costs 1 request and its estimated plan tokens (prompt estimate + max_tokens, as OpenAI counts). It passes
  when its cost fits what is left: with 10 tokens left a 10-token call passes and the next one is refused, so the
  limits block at exactly 100 %, never earlier.
- Settling replaces the estimate with the actual tokens: unused tokens go back; extra tokens are taken even into
  debt (the next calls wait for it), so over time a key never gets more than its limit.
- A call whose estimate exceeds the whole TPM limit can never fit: refused with `x-should-retry: false`.

These buckets are per instance: alone, a key spread over N instances could get up to N x its RPM and TPM.
limits.leases adds the key's shared budget on top, so that N instances together stay within one instance's
limits plus N lease slices (the bound is derived there); the headers stay this instance's view.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import RateLimited
from limits.plans import Plan

WINDOW_SECONDS = 60.0
# Refill is float arithmetic: forgive rounding noise so a bucket that should hold `cost` does.
_EPSILON = 1e-9


def format_duration(seconds: float) -> str:
    """OpenAI's (Go) duration format: `20ms`, `1s`, `1.5s`, `6m0s`; rounded up to the millisecond."""
    ms = math.ceil(seconds * 1000 - 1e-6)
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    minutes, rest = divmod(ms, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{minutes}m{secs}" if minutes else secs


@dataclass
class Bucket:
    limit: int
    level: float
    at: float

    def refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.at)
        self.level = min(float(self.limit), self.level + elapsed * self.limit / WINDOW_SECONDS)
        self.at = now

    def fits(self, cost: int) -> bool:
        return cost <= self.level + _EPSILON

    def wait_for(self, cost: float) -> float:
        """Seconds until the bucket holds `cost`."""
        return max(0.0, (cost - self.level) * WINDOW_SECONDS / self.limit)

    def remaining(self) -> int:
        return max(0, math.floor(self.level + _EPSILON))

    def put_back(self, amount: float) -> None:
        self.level = min(float(self.limit), self.level + amount)


@dataclass
class KeyBuckets:
    requests: Bucket | None
    tokens: Bucket | None

    def all(self) -> list[Bucket]:
        return [b for b in (self.requests, self.tokens) if b is not None]


@dataclass
class RateTicket:
    """What one admitted call took from its key's buckets."""

    buckets: KeyBuckets
    tokens: int
    headers: dict[str, str]


def _resized(bucket: Bucket | None, limit: int | None, now: float) -> Bucket | None:
    if limit is None:
        return None
    if bucket is None:
        return Bucket(limit, float(limit), now)
    bucket.limit = limit
    bucket.level = min(bucket.level, float(limit))
    return bucket


def rate_headers(buckets: KeyBuckets) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, bucket in (("requests", buckets.requests), ("tokens", buckets.tokens)):
        if bucket is not None:
            headers[f"x-ratelimit-limit-{name}"] = str(bucket.limit)
            headers[f"x-ratelimit-remaining-{name}"] = str(bucket.remaining())
            headers[f"x-ratelimit-reset-{name}"] = format_duration(bucket.wait_for(bucket.limit))
    return headers


class RateLimiter:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic, prune_above: int = 100_000) -> None:
        self._clock = clock
        self._keys: dict[str, KeyBuckets] = {}
        self._prune_above = prune_above

    def take(self, key_id: str, plan: Plan, tokens: int) -> RateTicket:
        """Take 1 request and `tokens` from the key's buckets, or raise RateLimited taking nothing."""
        now = self._clock()
        buckets = self._buckets(key_id, plan, now)
        for bucket in buckets.all():
            bucket.refill(now)
        self._refuse_if_over(buckets, tokens)
        if buckets.requests is not None:
            buckets.requests.level -= 1
        if buckets.tokens is not None:
            buckets.tokens.level -= tokens
        return RateTicket(buckets, tokens, rate_headers(buckets))

    def give_back(self, ticket: RateTicket, *, request: bool) -> None:
        """Return a ticket's tokens (and its request, when the call was refused by us)."""
        self.correct(ticket, 0)
        if request and ticket.buckets.requests is not None:
            ticket.buckets.requests.put_back(1)

    def correct(self, ticket: RateTicket, actual_tokens: int) -> None:
        bucket = ticket.buckets.tokens
        if bucket is not None:
            bucket.refill(self._clock())
            bucket.put_back(ticket.tokens - actual_tokens)

    def _buckets(self, key_id: str, plan: Plan, now: float) -> KeyBuckets:
        found = self._keys.get(key_id)
        if found is None:
            if len(self._keys) >= self._prune_above:
                self._prune(now)
            found = self._keys[key_id] = KeyBuckets(None, None)
        # The plan may have changed since the last call: follow its current limits.
        found.requests = _resized(found.requests, plan.rpm, now)
        found.tokens = _resized(found.tokens, plan.tpm, now)
        return found

    def _prune(self, now: float) -> None:
        """Forget keys whose buckets are full again: a fresh bucket is the same thing."""
        for key_id, buckets in list(self._keys.items()):
            for bucket in buckets.all():
                bucket.refill(now)
            if all(b.level >= b.limit for b in buckets.all()):
                del self._keys[key_id]
        self._prune_above = max(self._prune_above, 2 * len(self._keys))

    @staticmethod
    def _refuse_if_over(buckets: KeyBuckets, tokens: int) -> None:
        token_bucket = buckets.tokens
        if token_bucket is not None and tokens > token_bucket.limit:
            raise _refusal(
                "tokens",
                f"Request too large on tokens per min (TPM): Limit {token_bucket.limit}, Requested {tokens}. "
                "Reduce the input or max_tokens.",
                token_bucket.wait_for(token_bucket.limit),
                {**rate_headers(buckets), "x-should-retry": "false"},
            )
        over = [
            (kind, bucket, cost)
            for kind, bucket, cost in (("requests", buckets.requests, 1), ("tokens", token_bucket, tokens))
            if bucket is not None and not bucket.fits(cost)
        ]
        if over:
            kind, bucket, cost = over[0]
            wait = max(b.wait_for(c) for _, b, c in over)
            raise rate_limited(kind, bucket.limit, bucket.remaining(), cost, wait, rate_headers(buckets))


def rate_limited(
    kind: str, limit: int, remaining: int, requested: int, wait: float, headers: dict[str, str]
) -> RateLimited:
    """OpenAI's 429 for a `kind` ("requests" or "tokens") limit that cannot take `requested` for `wait` seconds."""
    unit = "requests per min (RPM)" if kind == "requests" else "tokens per min (TPM)"
    message = (
        f"Rate limit reached on {unit}: Limit {limit}, Remaining {remaining}, "
        f"Requested {requested}. Please try again in {format_duration(wait)}."
    )
    return _refusal(kind, message, wait, headers)


def _refusal(kind: str, message: str, wait: float, headers: dict[str, str]) -> RateLimited:
    error = RateLimited(message, retry_after=math.ceil(wait * 1000) / 1000, headers=headers)
    error.error_type = kind  # OpenAI's 429 type: "requests" or "tokens"
    return error
