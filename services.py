"""Composition root: builds every adapter once per worker process from the settings."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from azure.core.credentials_async import AsyncTokenCredential

from core.settings import Settings, get_settings
from core.tables import Tables
from keystore.master_secret import MasterSecretProvider, master_secret_provider
from keystore.repository import KeyRepository
from provisioning.arm import ArmClient
from provisioning.audit import AuditLog
from provisioning.credentials import arm_credential, service_credential
from provisioning.deployment_store import DeploymentStore
from provisioning.entra import TokenValidator
from provisioning.exchange import KeyExchange
from provisioning.rotation import RotationPolicy
from provisioning.webhook import MarketplaceWebhook


@dataclass
class Services:
    settings: Settings
    tables: Tables
    http: httpx.AsyncClient
    credential: AsyncTokenCredential
    masters: MasterSecretProvider
    keys: KeyRepository
    deployments: DeploymentStore
    audit: AuditLog
    validator: TokenValidator
    exchange: KeyExchange
    webhook: MarketplaceWebhook
    _closers: list[AsyncTokenCredential] = field(default_factory=list)

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
        masters = master_secret_provider(settings, credential=credential)
        keys = KeyRepository(tables)
        deployments = DeploymentStore(tables)
        audit = AuditLog(tables)
        validator = TokenValidator.from_settings(settings, http=http)
        arm_cred = await arm_credential(settings, service=credential)
        arm = ArmClient(http=http, credential=arm_cred, endpoint=settings.arm_endpoint)
        policy = RotationPolicy(
            rotate_after=timedelta(days=settings.key_rotation_days),
            grace=timedelta(hours=settings.key_rotation_grace_hours),
        )
        exchange = KeyExchange(
            validator=validator, deployments=deployments, arm=arm, keys=keys,
            masters=masters, audit=audit, policy=policy,
        )
        webhook = MarketplaceWebhook(
            secret=settings.webhook_secret.get_secret_value(), deployments=deployments, keys=keys, audit=audit
        )
        closers = [arm_cred] if arm_cred is not credential else []
        return cls(
            settings=settings, tables=tables, http=http, credential=credential, masters=masters,
            keys=keys, deployments=deployments, audit=audit, validator=validator,
            exchange=exchange, webhook=webhook, _closers=closers,
        )

    async def close(self) -> None:
        await self.tables.close()
        await self.masters.close()
        for closer in self._closers:
            await closer.close()
        await self.credential.close()
        await self.http.aclose()


_current: Services | None = None
_lock = asyncio.Lock()


async def get_services() -> Services:
    """The worker's services, built on first use (and rebuilt after a failed start)."""
    global _current
    if _current is None:
        async with _lock:
            if _current is None:
                _current = await Services.create(get_settings())
    return _current


def install(services: Services | None) -> None:
    """Used by the local server and tests to provide services built from their own settings."""
    global _current
    _current = services
