"""core.metrics_export: the exporter a setting names, refused when it cannot work, harmless when it fails."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry._logs import get_logger_provider
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from pydantic import ValidationError

from core import metrics_export
from core.metrics_export import CONNECTION_STRING, start_metrics
from core.metrics_sinks import MeteredUsageSink
from core.settings import Settings
from usage.records import UsageRecord


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def usage(n: int) -> UsageRecord:
    return UsageRecord(request_id=f"r{n}", at=datetime.now(UTC), team="t", key_id="k", plan_id="pro",
                       model_alias="gpt-4o", endpoint="/v1/chat/completions", status=200, latency_ms=5,
                       prompt_tokens=3, completion_tokens=2, total_tokens=5)


class Sink:
    async def record(self, record: UsageRecord) -> None:
        return None


class Exporter(MetricExporter):
    """Raises, or hangs until released, at every export; counts how often it was asked."""

    def __init__(self, *, hang: bool) -> None:
        super().__init__()
        self.hang = hang
        self.entered = threading.Event()
        self.release = threading.Event()
        self.exports = 0

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        self.exports += 1
        self.entered.set()
        if self.hang:
            self.release.wait()
            return MetricExportResult.SUCCESS
        raise ConnectionError("ingestion endpoint unreachable")

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.release.set()


@pytest.mark.parametrize(("name", "value", "message"), [
    ("LIUTONG_METRICS_EXPORTER", "statsd", "'none', 'azure_monitor' or 'prometheus'"),
    ("LIUTONG_METRICS_PROMETHEUS_PORT", "70000", "less than or equal to 65535"),
    ("LIUTONG_METRICS_PROMETHEUS_PORT", "-1", "greater than or equal to 0"),
    ("LIUTONG_METRICS_PROMETHEUS_PORT", "metrics", "valid integer"),
])
def test_a_bad_setting_refuses_to_start(monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message) as refused:
        Settings(_env_file=None)  # type: ignore[call-arg]
    assert name.removeprefix("LIUTONG_").lower() in str(refused.value)


def test_a_port_in_use_refuses_to_start() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ValueError, match=f"LIUTONG_METRICS_PROMETHEUS_PORT={port}"):
            start_metrics(settings(metrics_exporter="prometheus", metrics_prometheus_port=port))


async def test_the_prometheus_port_serves_the_same_text_on_loopback() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    runtime = start_metrics(settings(metrics_exporter="prometheus", metrics_prometheus_port=port))
    try:
        await MeteredUsageSink(Sink(), runtime.metrics).record(usage(1))
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        assert 'liutong_tokens_total{' in text and 'token_type="total"' in text
        assert text.count("liutong_requests_total{") == 1
    finally:
        await runtime.shutdown()


def test_azure_monitor_needs_its_connection_string(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONNECTION_STRING, raising=False)
    with pytest.raises(ValueError, match=CONNECTION_STRING):
        start_metrics(settings(metrics_exporter="azure_monitor"))


async def test_azure_monitor_exports_metrics_only_with_the_managed_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONNECTION_STRING, "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
                       "IngestionEndpoint=http://127.0.0.1:9/")
    monkeypatch.setenv("APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL", "")  # so that the end of the test restores it
    monkeypatch.delenv("APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL")
    tracer_provider, logger_provider = trace.get_tracer_provider(), get_logger_provider()

    class Credential:
        def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            raise AssertionError("no export happens in this test")

    credential = Credential()
    runtime = start_metrics(settings(metrics_exporter="azure_monitor", metrics_export_interval_seconds=3600),
                            credential=credential)
    try:
        assert runtime.provider is not None
        exporter = runtime.exporter
        assert type(exporter).__name__ == "AzureMonitorMetricExporter"
        assert exporter._credential is credential  # type: ignore[union-attr]
        assert os.environ["APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL"] == "true"  # no usage reports of the SDK
        # No span or log pipeline is set up, so no request URL (nor its ?sig=) can leave through this exporter.
        assert trace.get_tracer_provider() is tracer_provider
        assert get_logger_provider() is logger_provider
        assert not any("opentelemetry" in type(h).__module__ for h in __import__("logging").getLogger().handlers)
    finally:
        await runtime.shutdown()


@pytest.mark.parametrize("hang", [False, True], ids=["raises", "hangs"])
async def test_a_failing_exporter_neither_fails_nor_slows_calls(monkeypatch: pytest.MonkeyPatch, hang: bool) -> None:
    monkeypatch.setattr(metrics_export, "SHUTDOWN_SECONDS", 0.5)
    exporter = Exporter(hang=hang)
    runtime = start_metrics(settings(metrics_exporter="azure_monitor", metrics_export_interval_seconds=1),
                            exporter=exporter)
    sink = MeteredUsageSink(Sink(), runtime.metrics)
    try:
        await sink.record(usage(0))
        assert await asyncio.to_thread(exporter.entered.wait, 10), "the reader never exported"
        # The export thread is now inside export() (hanging, or raising at every interval): calls go on.
        started = time.perf_counter()
        for n in range(2000):
            await sink.record(usage(n))
        per_call = (time.perf_counter() - started) / 2000
        assert per_call < 0.001, f"{per_call * 1e6:.0f} µs per record while the exporter {'hangs' if hang else 'fails'}"
        if not hang:
            await asyncio.sleep(2.5)
            assert exporter.exports >= 2  # it kept trying, and every call above still went through
    finally:
        started = time.perf_counter()
        await runtime.shutdown()
        assert time.perf_counter() - started < 5  # a hanging exporter delays shutdown a bounded time only

