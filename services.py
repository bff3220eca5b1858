"""Composition root: builds every adapter once per worker process from the settings."""

from __future__ import annotations

import asyncio
import gc
from dataclasses import dataclass, field
from typing import Any

import httpx
from azure.core.credentials_async import AsyncTokenCredential

from admin.byok import AdminByok
from admin.service import AdminService
from core import metrics as metrics_facade
from core.identity import service_credential
from core.metrics_export import MetricsRuntime, start_metrics
from core.settings import Settings, get_settings
from core.tables import Tables
from keystore.last_used import LastUsedRecorder
from keystore.master_secret import MasterSecretProvider
from keystore.repository import KeyRepository
from keystore.teams import TeamStore
from limits.limiter import PlanLimiter
from limits.plans import PlanCatalog
from metering.submit import MeteringDeps
from provisioning.audit import AuditLog
from provisioning.deployment_store import DeploymentStore
from provisioning.entra import TokenValidator
from provisioning.exchange import KeyExchange
from provisioning.webhook import MarketplaceWebhook
from proxy.account import AccountUsage
from proxy.service import ProxyService
from usage.writer import UsageWriter
from wiring import build_account, build_admin, build_metering, build_provisioning, build_proxy


@dataclass
class Services:
    settings: Settings
    tables: Tables
    http: httpx.AsyncClient
    credential: AsyncTokenCredential
    masters: MasterSecretProvider
    keys: KeyRepository
    teams: TeamStore
    deployments: DeploymentStore
    audit: AuditLog
    validator: TokenValidator
    exchange: KeyExchange
    webhook: MarketplaceWebhook
    plans: PlanCatalog
    last_used: LastUsedRecorder
    limiter: PlanLimiter
    usage: UsageWriter
    proxy: ProxyService
    metering: MeteringDeps
    account: AccountUsage
    admin: AdminService | None = None
    byok_admin: AdminByok | None = None
    metrics: MetricsRuntime | None = None
    _closers: list[Any] = field(default_factory=list)

    @classmethod
    async def create(cls, settings: Settings, *, table_options: dict[str, Any] | None = None) -> Services:
        http = httpx.AsyncClient(timeout=settings.http_timeout_seconds, follow_redirects=False)
        credential = service_credential(settings)
        tables = Tables(settings, credential=credential, **(table_options or {}))
        try:
            await tables.ensure_tables()
        except BaseException:
            # A cold start during a storage outage answers 503 and is retried: leak nothing.
            await tables.close()
            await credential.close()
            await http.aclose()
            raise
        parts: dict[str, Any] = {"settings": settings, "tables": tables, "http": http, "credential": credential}
        parts["metrics"] = metrics = start_metrics(settings)
        parts.update(await build_provisioning(settings, tables=tables, http=http, credential=credential))
        parts.update(await build_metering(settings, tables=tables, http=http, credential=credential, parts=parts))
        parts.update(build_proxy(settings, tables=tables, credential=credential, parts=parts))
        parts.update(build_account(tables=tables, parts=parts))
        parts["admin"] = build_admin(settings, tables=tables, http=http, parts=parts)
        closers = parts.pop("closers")
        metrics.metrics.watch_usage_writer(parts["usage"])
        metrics_facade.install(metrics.metrics)
        return cls(**parts, _closers=closers)

    async def close(self) -> None:
        """Drain first (usage, counters, last-used), then release clients."""
        await self.proxy.close()
        await self.usage.close()
        await self.limiter.close()
        await self.last_used.close()
        for closer in self._closers:
            await closer.close()
        await self.masters.close()
        await self.tables.close()
        await self.credential.close()
        await self.http.aclose()
        if self.metrics is not None:
            await self.metrics.shutdown()
            if metrics_facade.current() is self.metrics.metrics:
                metrics_facade.install(None)


_current: Services | None = None
_lock = asyncio.Lock()


async def get_services() -> Services:
    """The worker's services, built on first use (and rebuilt after a failed start)."""
    global _current
    if _current is None:
        async with _lock:
            if _current is None:
                _current = await Services.create(get_settings())
                freeze_startup_heap()
    return _current


def freeze_startup_heap() -> None:
    """Takes every object alive once the services exist (modules, clients, plans, caches: they live as long as
    the worker) out of the garbage collector's full collections, which then traverse only what calls allocate.
    Measured with 750 concurrent streams on one core: the longest pause 110 -> 25 ms, the added time to first
    token p99 +131 -> +10 ms. Called once the worker's services are built, never on a request's path after."""
    gc.collect()
    gc.freeze()


def install(services: Services | None) -> None:
    """Used by the local server and tests to provide services built from their own settings."""
    global _current
    _current = services
