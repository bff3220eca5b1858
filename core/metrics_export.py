"""Where metrics go, by LIUTONG_METRICS_EXPORTER: nowhere ("none"), Azure Monitor, or a Prometheus text endpoint.

Metrics only: no tracer or logger provider is set up here, so no span or log record - and no request URL, with
or without the Marketplace webhook's `?sig=` - can leave through this exporter. Azure Monitor is reached with the
Function app's managed identity (the Application Insights resource has local auth disabled) at the connection
string the Bicep sets, APPLICATIONINSIGHTS_CONNECTION_STRING. Export runs in the SDK's own thread
(PeriodicExportingMetricReader); the proxy's calls only touch core.metrics' in-memory tallies, so an exporter that
fails or hangs costs them nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any

from opentelemetry.metrics import NoOpMeter
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from core.metrics import Metrics
from core.settings import Settings

log = logging.getLogger(__name__)

CONNECTION_STRING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SHUTDOWN_SECONDS = 5.0


@dataclass
class MetricsRuntime:
    """One service instance's metrics and where they go; shut down with the instance."""

    metrics: Metrics
    provider: MeterProvider | None = None
    registry: Any = None  # prometheus_client.CollectorRegistry when exporting to Prometheus
    server: Any = None  # the loopback listener on LIUTONG_METRICS_PROMETHEUS_PORT, if any
    exporter: MetricExporter | None = None  # the push exporter (Azure Monitor), if any

    def prometheus_text(self) -> bytes | None:
        """The Prometheus exposition of every metric now, or None when Prometheus is not the exporter."""
        if self.registry is None:
            return None
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    async def shutdown(self) -> None:
        """A last export, bounded: a hanging exporter delays the instance's shutdown by SHUTDOWN_SECONDS at most."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self.provider is not None:
            provider = self.provider
            self.provider = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.to_thread(_shutdown, provider), SHUTDOWN_SECONDS + 1)


def start_metrics(
    settings: Settings, *, exporter: MetricExporter | None = None, credential: Any = None,
) -> MetricsRuntime:
    """exporter/credential replace Azure Monitor's in tests; with "none" nothing is collected or exported."""
    kind = settings.metrics_exporter
    if kind == "none":
        return MetricsRuntime(Metrics(NoOpMeter("liutong")))
    if kind == "prometheus":
        return _prometheus(settings)
    exporter = exporter or _azure_monitor(credential, settings)
    reader = PeriodicExportingMetricReader(
        exporter,
        export_interval_millis=settings.metrics_export_interval_seconds * 1000,
        export_timeout_millis=SHUTDOWN_SECONDS * 1000,
    )
    provider = _provider(reader)
    return MetricsRuntime(_metrics(provider, settings), provider, exporter=exporter)


STATSBEAT_DISABLED = "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL"


def _azure_monitor(credential: Any, settings: Settings) -> MetricExporter:
    connection_string = os.environ.get(CONNECTION_STRING, "")
    if not connection_string:
        raise ValueError(f"LIUTONG_METRICS_EXPORTER=azure_monitor needs {CONNECTION_STRING} (set by the Bicep)")
    from azure.identity import ManagedIdentityCredential
    from azure.monitor.opentelemetry.exporter import AzureMonitorMetricExporter

    if credential is None:
        credential = ManagedIdentityCredential(client_id=settings.managed_identity_client_id or None)
    # The exporter's own usage reports to Microsoft ("statsbeat") are not ours to send: off unless set otherwise.
    os.environ.setdefault(STATSBEAT_DISABLED, "true")
    exporter: MetricExporter = AzureMonitorMetricExporter(connection_string=connection_string, credential=credential)
    return exporter


def _prometheus(settings: Settings) -> MetricsRuntime:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import CollectorRegistry, start_http_server

    # A registry of this instance's own: two instances in one process (tests) do not see each other's series.
    registry = CollectorRegistry(auto_describe=True)
    reader = PrometheusMetricReader(disable_target_info=True, scope_info_enabled=False, registry=registry)
    provider = _provider(reader)
    runtime = MetricsRuntime(_metrics(provider, settings), provider, registry)
    if settings.metrics_prometheus_port:
        try:
            runtime.server, _ = start_http_server(settings.metrics_prometheus_port, addr="127.0.0.1",
                                                  registry=registry)
        except OSError as error:
            provider.shutdown()
            raise ValueError(f"LIUTONG_METRICS_PROMETHEUS_PORT={settings.metrics_prometheus_port}: {error}") from None
    return runtime


def _provider(reader: MetricReader) -> MeterProvider:
    # Not the global provider: each service instance owns its own, and nothing else (no auto-instrumentation) uses it.
    return MeterProvider(
        metric_readers=[reader], resource=Resource.create({"service.name": "liutong"}),
        exemplar_filter=AlwaysOffExemplarFilter(), shutdown_on_exit=False,
    )


def _metrics(provider: MeterProvider, settings: Settings) -> Metrics:
    return Metrics(provider.get_meter("liutong"), per_deployment=settings.metrics_per_deployment)


def _shutdown(provider: MeterProvider) -> None:
    try:
        provider.shutdown(timeout_millis=SHUTDOWN_SECONDS * 1000)
    except Exception as error:  # noqa: BLE001 - metrics must not fail the instance's shutdown
        log.warning("metrics exporter did not shut down cleanly (%s)", type(error).__name__)

