"""core.metrics: what one call's usage record, refusal and handler answer become, read through the OTel SDK."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from core import metrics as facade
from core.errors import InsufficientQuota, PermissionDenied, RateLimited
from core.metrics import Metrics, first_chunk_at, refusal_reason
from core.metrics_sinks import MeteredUsageSink
from usage.records import UsageRecord

# Every attribute any metric may carry: never a key, key id, team, request id, IP or application ID.
ALLOWED = {"plan", "model", "endpoint", "mode", "auto", "byok", "status_class", "token_type", "le", "status",
           "reason", "route", "outcome", "direction", "deployment"}
DEPLOYMENT = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Solutions/applications/app1"


def record(**changes: Any) -> UsageRecord:
    values: dict[str, Any] = {
        "request_id": "req-1", "at": datetime(2026, 1, 1, tzinfo=UTC), "team": "team-secret", "key_id": "k-secret",
        "plan_id": "pro", "model_alias": "gpt-4o", "endpoint": "/v1/chat/completions", "status": 200,
        "latency_ms": 120, "prompt_tokens": 10, "cached_tokens": 4, "completion_tokens": 7, "reasoning_tokens": 3,
        "total_tokens": 17,
    }
    values.update(changes)
    return UsageRecord(**values)


class Sink:
    def __init__(self) -> None:
        self.records: list[UsageRecord] = []

    async def record(self, record: UsageRecord) -> None:
        self.records.append(record)


def points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, Any], float]]]:
    data = reader.get_metrics_data()
    found: dict[str, list[tuple[dict[str, Any], float]]] = {}
    if data is None:
        return found
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    found.setdefault(metric.name, []).append((dict(point.attributes or {}), point.value))  # type: ignore[union-attr]
    return found


def value(found: dict[str, list[tuple[dict[str, Any], float]]], name: str, **attributes: str) -> float:
    return sum(v for attrs, v in found.get(name, []) if attributes.items() <= attrs.items())


@pytest.fixture
def meter_and_reader() -> Iterator[tuple[Any, InMemoryMetricReader]]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    yield provider.get_meter("liutong"), reader
    provider.shutdown()


async def test_a_usage_record_becomes_tokens_by_type_and_one_request(meter_and_reader: Any) -> None:
    meter, reader = meter_and_reader
    metrics = Metrics(meter)
    inner = Sink()
    sink = MeteredUsageSink(inner, metrics)
    await sink.record(record())
    await sink.record(record(status=502, deployment_id=DEPLOYMENT, auto=True, byok=True, total_tokens=0,
                             prompt_tokens=0, cached_tokens=0, completion_tokens=0, reasoning_tokens=0))
    assert len(inner.records) == 2
    found = points(reader)
    team = {"plan": "pro", "model": "gpt-4o", "endpoint": "/v1/chat/completions", "mode": "team"}
    for token_type, expected in {"prompt": 10, "cached": 4, "completion": 7, "reasoning": 3, "total": 17}.items():
        assert value(found, "liutong.tokens", **team, token_type=token_type) == expected
    assert value(found, "liutong.requests", **team, status_class="2xx", auto="false", byok="false") == 1
    assert value(found, "liutong.requests", mode="marketplace", status_class="5xx", auto="true", byok="true") == 1
    # One duration bucket series per le, cumulative: 120 ms is above 100 and within 250.
    assert value(found, "liutong.upstream.duration.buckets", status_class="2xx", le="100") == 0
    assert value(found, "liutong.upstream.duration.buckets", status_class="2xx", le="250") == 1
    assert value(found, "liutong.upstream.duration.buckets", status_class="2xx", le="+Inf") == 1
    assert "liutong.time_to_first_token.buckets" not in found  # neither call was a stream
    for name, series in found.items():
        for attributes, _ in series:
            assert set(attributes) <= ALLOWED - {"deployment"}, name
            assert not {"k-secret", "team-secret", "req-1", DEPLOYMENT} & set(attributes.values())


async def test_a_deployment_appears_only_hashed_and_only_when_asked(meter_and_reader: Any) -> None:
    meter, reader = meter_and_reader
    sink = MeteredUsageSink(Sink(), Metrics(meter, per_deployment=True))
    await sink.record(record(deployment_id=DEPLOYMENT))
    found = points(reader)
    hashed = hashlib.sha256(DEPLOYMENT.encode()).hexdigest()[:16]
    assert value(found, "liutong.tokens", deployment=hashed, token_type="total") == 17
    assert all(DEPLOYMENT not in attrs.values() for series in found.values() for attrs, _ in series)


async def test_time_to_first_token_comes_from_the_relay_through_the_context(meter_and_reader: Any) -> None:
    import time

    meter, reader = meter_and_reader
    sink = MeteredUsageSink(Sink(), Metrics(meter))
    # The first chunk went out 900 ms before the record, of a call that took 1,000 ms: 100 ms to the first token.
    token = first_chunk_at.set(time.monotonic() - 0.9)
    try:
        await sink.record(record(latency_ms=1000))
    finally:
        first_chunk_at.reset(token)
    found = points(reader)
    assert value(found, "liutong.time_to_first_token.buckets", model="gpt-4o", le="50") == 0
    assert value(found, "liutong.time_to_first_token.buckets", model="gpt-4o", le="250") == 1


def test_429s_by_what_ran_out() -> None:
    rpm = RateLimited("Rate limit reached on requests per min (RPM)", retry_after=1)
    rpm.error_type = "requests"
    tpm = RateLimited("Rate limit reached on tokens per min (TPM)", retry_after=1)
    tpm.error_type = "tokens"
    # The messages limits.quota and limits.lots raise (the only difference between the two refusals).
    quota = InsufficientQuota("You exceeded your monthly included tokens (1000); check your plan and billing details.")
    balance = InsufficientQuota("Your prepaid balance is empty. Add credit to continue.", exhausted="balance")
    pack = InsufficientQuota("Your pack for model 'gpt-4o' is used up.", exhausted="balance")
    assert refusal_reason(429, rpm.code, rpm) == "rpm"
    assert refusal_reason(429, tpm.code, tpm) == "tpm"
    assert refusal_reason(429, quota.code, quota) == "quota"
    assert refusal_reason(429, balance.code, balance) == "balance"
    assert refusal_reason(429, pack.code, pack) == "balance"
    denied = PermissionDenied("no", code="model_not_found")
    assert refusal_reason(403, denied.code, denied) == "model_not_found"


def test_refusals_are_counted_by_status_and_reason(meter_and_reader: Any) -> None:
    meter, reader = meter_and_reader
    metrics = Metrics(meter)
    error = RateLimited("x", retry_after=1)
    error.error_type = "tokens"
    metrics.refusal(429, error.code, error)
    metrics.refusal(429, error.code, error)
    metrics.refusal(401, "invalid_api_key")
    found = points(reader)
    assert value(found, "liutong.refusals", status="429", reason="tpm") == 2
    assert value(found, "liutong.refusals", status="401", reason="invalid_api_key") == 1


class Writer:
    def __init__(self, path: Path) -> None:
        self.journal_path = path
        self.stats = type("Stats", (), {"spilled": 5, "replayed": 3})()


def test_the_journal_backlog_is_read_from_the_writer(meter_and_reader: Any, tmp_path: Path) -> None:
    meter, reader = meter_and_reader
    metrics = Metrics(meter)
    journal = tmp_path / "usage-abc.jsonl"
    journal.write_bytes(b"x" * 123)
    metrics.watch_usage_writer(Writer(journal))
    found = points(reader)
    assert value(found, "liutong.usage.journal.backlog") == 123
    assert value(found, "liutong.usage.journal.records", direction="spilled") == 5
    assert value(found, "liutong.usage.journal.records", direction="replayed") == 3


async def test_handlers_are_counted_by_status_and_submissions_by_outcome(meter_and_reader: Any) -> None:
    meter, reader = meter_and_reader
    facade.install(Metrics(meter))
    try:
        @facade.counted("exchange")
        async def exchange(req: Request) -> Response:
            return JSONResponse({}, status_code=403)

        @facade.counted("webhook")
        async def webhook(req: Request) -> Response:
            return JSONResponse({})

        request = Request({"type": "http", "method": "POST", "path": "/", "headers": []})
        await exchange(request)
        await webhook(request)
        facade.current().marketplace_submissions(["accepted", "accepted", "error"])
    finally:
        facade.install(None)
    found = points(reader)
    assert value(found, "liutong.key_exchanges", route="exchange", status="403") == 1
    assert value(found, "liutong.webhook.events", status="200") == 1
    assert value(found, "liutong.marketplace.submissions", outcome="accepted") == 2
    assert value(found, "liutong.marketplace.submissions", outcome="error") == 1
