"""The service's metrics: the instruments, and the one facade everything records through.

The per-call numbers (tokens, requests, time to first token, upstream duration, refusals) are tallied in plain
dicts on the event loop - a dict lookup and a few additions per call - and read by observable counters when the
SDK collects (in its own thread, core.metrics_export). An SDK `add` or `record` costs 6-14 µs here, several per call:
more than the proxy benchmark's noise. Durations are tallied the same way, as cumulative bucket counters with an
`le` attribute: Application Insights keeps only count/sum/min/max of an OTel histogram, so a percentile in the
workbook needs the buckets themselves (Prometheus' histogram_quantile reads them as they are).

Attributes never carry a key, key id, token, IP, prompt or application ID; a deployment only as a hash, and only
when LIUTONG_METRICS_PER_DEPLOYMENT is on. The metric names and attributes are listed in the README ("Metrics").
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import os
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Protocol, TypeVar

from opentelemetry.metrics import CallbackOptions, Meter, NoOpMeter, Observation
from starlette.requests import Request

# Upper bounds (ms) of the duration buckets; the last bucket is "+Inf".
BOUNDS_MS = (50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)
LE = (*(str(b) for b in BOUNDS_MS), "+Inf")
TOKEN_TYPES = ("prompt", "cached", "completion", "reasoning", "total")

# Set by the stream relay (proxy.streaming) just before it accounts for a stream: when its first chunk went out
# (time.monotonic()). Read in the same task by MeteredUsageSink, so no per-call state crosses the proxy's code.
first_chunk_at: ContextVar[float | None] = ContextVar("liutong_first_chunk_at", default=None)


class UsageFacts(Protocol):
    """What metrics read of a usage record (usage.records.UsageRecord)."""

    @property
    def plan_id(self) -> str: ...
    @property
    def model_alias(self) -> str: ...
    @property
    def endpoint(self) -> str: ...
    @property
    def status(self) -> int: ...
    @property
    def latency_ms(self) -> int: ...
    @property
    def prompt_tokens(self) -> int: ...
    @property
    def cached_tokens(self) -> int: ...
    @property
    def completion_tokens(self) -> int: ...
    @property
    def reasoning_tokens(self) -> int: ...
    @property
    def total_tokens(self) -> int: ...
    @property
    def deployment_id(self) -> str | None: ...
    @property
    def auto(self) -> bool: ...
    @property
    def byok(self) -> bool: ...


class WriterFacts(Protocol):
    """What metrics read of the usage writer (usage.writer.UsageWriter)."""

    @property
    def journal_path(self) -> Path: ...
    @property
    def stats(self) -> _WriterStats: ...


class _WriterStats(Protocol):
    spilled: int
    replayed: int


class HasStatus(Protocol):
    status_code: int


def status_class(status: int) -> str:
    return f"{status // 100}xx"


def refusal_reason(status: int, code: str | None, error: BaseException | None) -> str:
    """429s by what ran out (rpm, tpm, quota, balance); other refusals by their error code."""
    if status != 429:
        return code or "-"
    kind = getattr(error, "error_type", None)
    if kind == "requests":
        return "rpm"
    if kind == "tokens":
        return "tpm"
    if code == "insufficient_quota":
        return "balance" if getattr(error, "exhausted", None) == "balance" else "quota"
    return code or "-"


class Metrics:
    """Build one per service instance over a Meter (NoOpMeter: nothing is exported, tallies still cost ~1 µs)."""

    def __init__(self, meter: Meter, *, per_deployment: bool = False) -> None:
        self._per_deployment = per_deployment
        self._deployments: dict[str, str] = {}
        self._calls: dict[tuple[str, ...], list[int]] = {}
        self._durations: dict[tuple[str, ...], list[int]] = {}
        self._ttft: dict[tuple[str, ...], list[int]] = {}
        self._refusals: dict[tuple[str, str], int] = {}
        self._writers: list[WriterFacts] = []
        meter.create_observable_counter("liutong.requests", [self._observe_requests], unit="{request}",
                                        description="Proxied calls by plan, model, endpoint, mode and status class")
        meter.create_observable_counter("liutong.tokens", [self._observe_tokens], unit="{token}",
                                        description="Tokens of proxied calls by type (prompt, cached, ...)")
        meter.create_observable_counter("liutong.upstream.duration.buckets", [self._observe_durations],
                                        unit="{request}", description="Calls whose whole duration was <= le ms")
        meter.create_observable_counter("liutong.time_to_first_token.buckets", [self._observe_ttft],
                                        unit="{request}", description="Streams whose first chunk left <= le ms")
        meter.create_observable_counter("liutong.refusals", [self._observe_refusals], unit="{request}",
                                        description="Refused calls (401, 403, 429) by status and reason")
        meter.create_observable_gauge("liutong.usage.journal.backlog", [self._observe_backlog], unit="By",
                                      description="Bytes of usage records in the local journal, not yet stored")
        meter.create_observable_counter("liutong.usage.journal.records", [self._observe_journal], unit="{record}",
                                        description="Usage records spilled to / replayed from the journal")
        self._exchanges = meter.create_counter("liutong.key_exchanges", unit="{request}",
                                               description="Key exchanges and rotations by status")
        self._webhooks = meter.create_counter("liutong.webhook.events", unit="{event}",
                                              description="Marketplace notifications by status")
        self._submissions = meter.create_counter("liutong.marketplace.submissions", unit="{event}",
                                                 description="Usage events sent to the Marketplace by outcome")

    # --- recording (event loop) -----------------------------------------------------------------

    def usage(self, record: UsageFacts, *, first_chunk_ms: float | None = None) -> None:
        mode = "team" if record.deployment_id is None else "marketplace"
        status = status_class(record.status)
        key: tuple[str, ...] = (record.plan_id, record.model_alias, record.endpoint, mode,
                                "true" if record.auto else "false", "true" if record.byok else "false", status)
        if self._per_deployment:
            key = (*key, self._hashed(record.deployment_id))
        counts = self._calls.get(key)
        if counts is None:
            counts = self._calls[key] = [0] * (1 + len(TOKEN_TYPES))
        counts[0] += 1
        counts[1] += record.prompt_tokens
        counts[2] += record.cached_tokens
        counts[3] += record.completion_tokens
        counts[4] += record.reasoning_tokens
        counts[5] += record.total_tokens
        _tally(self._durations, (record.model_alias, record.endpoint, status), record.latency_ms)
        if first_chunk_ms is not None:
            _tally(self._ttft, (record.model_alias, record.endpoint), first_chunk_ms)

    def refusal(self, status: int, code: str | None, error: BaseException | None = None) -> None:
        key = (str(status), refusal_reason(status, code, error))
        self._refusals[key] = self._refusals.get(key, 0) + 1

    def key_exchange(self, route: str, status: int) -> None:
        self._exchanges.add(1, {"route": route, "status": str(status)})

    def webhook_event(self, status: int) -> None:
        self._webhooks.add(1, {"status": str(status)})

    def marketplace_submissions(self, outcomes: Iterable[str]) -> None:
        for outcome in outcomes:
            self._submissions.add(1, {"outcome": outcome})

    def watch_usage_writer(self, writer: WriterFacts) -> None:
        self._writers.append(writer)

    def _hashed(self, deployment_id: str | None) -> str:
        if deployment_id is None:
            return "-"
        hashed = self._deployments.get(deployment_id)
        if hashed is None:
            hashed = self._deployments[deployment_id] = hashlib.sha256(deployment_id.encode()).hexdigest()[:16]
        return hashed

    # --- observing (the SDK's collecting thread) -------------------------------------------------
    # list() copies a dict in one step under the GIL: the event loop may add keys meanwhile.

    def _call_attributes(self, key: tuple[str, ...]) -> dict[str, str]:
        names = ("plan", "model", "endpoint", "mode", "auto", "byok", "status_class", "deployment")
        return dict(zip(names, key, strict=False))

    def _observe_requests(self, options: CallbackOptions) -> Iterator[Observation]:
        for key, counts in list(self._calls.items()):
            yield Observation(counts[0], self._call_attributes(key))

    def _observe_tokens(self, options: CallbackOptions) -> Iterator[Observation]:
        totals: dict[tuple[str, ...], list[int]] = {}
        for key, counts in list(self._calls.items()):
            # Tokens do not depend on the status class: summed over it, fewer series.
            merged = totals.setdefault((*key[:6], *key[7:]), [0] * len(TOKEN_TYPES))
            for index in range(len(TOKEN_TYPES)):
                merged[index] += counts[1 + index]
        for key, sums in totals.items():
            attributes = dict(zip(("plan", "model", "endpoint", "mode", "auto", "byok", "deployment"), key,
                                  strict=False))
            for token_type, value in zip(TOKEN_TYPES, sums, strict=True):
                yield Observation(value, {**attributes, "token_type": token_type})

    def _observe_durations(self, options: CallbackOptions) -> Iterator[Observation]:
        for key, buckets in list(self._durations.items()):
            model, endpoint, status = key
            yield from _cumulative(buckets, {"model": model, "endpoint": endpoint, "status_class": status})

    def _observe_ttft(self, options: CallbackOptions) -> Iterator[Observation]:
        for key, buckets in list(self._ttft.items()):
            model, endpoint = key
            yield from _cumulative(buckets, {"model": model, "endpoint": endpoint})

    def _observe_refusals(self, options: CallbackOptions) -> Iterator[Observation]:
        for (status, reason), count in list(self._refusals.items()):
            yield Observation(count, {"status": status, "reason": reason})

    def _observe_backlog(self, options: CallbackOptions) -> Iterator[Observation]:
        for writer in self._writers:
            try:
                size = os.stat(writer.journal_path).st_size
            except OSError:
                size = 0
            yield Observation(size)

    def _observe_journal(self, options: CallbackOptions) -> Iterator[Observation]:
        spilled = sum(writer.stats.spilled for writer in self._writers)
        replayed = sum(writer.stats.replayed for writer in self._writers)
        if self._writers:
            yield Observation(spilled, {"direction": "spilled"})
            yield Observation(replayed, {"direction": "replayed"})


def _tally(table: dict[tuple[str, ...], list[int]], key: tuple[str, ...], value: float) -> None:
    buckets = table.get(key)
    if buckets is None:
        buckets = table[key] = [0] * len(LE)
    buckets[bisect.bisect_left(BOUNDS_MS, value)] += 1


def _cumulative(buckets: list[int], attributes: dict[str, str]) -> Iterator[Observation]:
    running = 0
    for le, count in zip(LE, buckets, strict=True):
        running += count
        yield Observation(running, {**attributes, "le": le})


_current = Metrics(NoOpMeter("liutong"))


def current() -> Metrics:
    """The worker's metrics, for code the composition does not reach (handlers, the metering job)."""
    return _current


def install(metrics: Metrics | None) -> None:
    global _current
    _current = metrics if metrics is not None else Metrics(NoOpMeter("liutong"))


Response = TypeVar("Response", bound=HasStatus)
Handler = Callable[[Request], Awaitable[Response]]


def counted(kind: str) -> Callable[[Handler[Response]], Handler[Response]]:
    """Counts each answer of an HTTP handler by status: kind "webhook", "exchange" or "rotate". Outside
    core.http.endpoint, which has already turned every error into its response."""

    def decorate(handler: Handler[Response]) -> Handler[Response]:
        @functools.wraps(handler)
        async def wrapper(req: Request) -> Response:
            response = await handler(req)
            if kind == "webhook":
                _current.webhook_event(response.status_code)
            else:
                _current.key_exchange(kind, response.status_code)
            return response

        return wrapper

    return decorate
