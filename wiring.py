"""How the adapters fit together, in three groups; services.Services holds the result."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from azure.core.credentials_async import AsyncTokenCredential

from admin.build import build_admin_service
from admin.byok_build import build_byok
from admin.deployments import AdminDeployments
from admin.service import AdminService
from admin.settings import AdminSettings
from core.metrics_sinks import MeteredUsageSink
from core.settings import Settings
from core.tables import Tables
from keystore.last_used import LastUsedRecorder
from keystore.master_secret import master_secret_provider
from keystore.repository import KeyRepository
from keystore.teams import TeamStore
from limits.limiter import PlanLimiter
from limits.overrides import OverrideStore
from limits.plans import PlanCatalog
from metering.marketplace_client import MarketplaceClient, metering_credential
from metering.submit import MeteringDeps, flush_deployment
from provisioning.arm import ArmClient
from provisioning.audit import AuditLog
from provisioning.credentials import arm_credential
from provisioning.deployment_store import DeploymentStore
from provisioning.deployments import Deployment
from provisioning.entra import TokenValidator
from provisioning.exchange import KeyExchange
from provisioning.rotation import RotationPolicy
from provisioning.webhook import MarketplaceWebhook
from proxy.account import AccountUsage
from proxy.auth import PrincipalResolver
from proxy.registry import UpstreamRegistry
from proxy.service import ProxyService
from usage.month_to_date import MonthToDate
from usage.refusals import RefusalCounter
from usage.writer import UsageWriter


def rotation_policy(settings: Settings) -> RotationPolicy:
    return RotationPolicy(
        rotate_after=timedelta(days=settings.key_rotation_days),
        grace=timedelta(hours=settings.key_rotation_grace_hours),
    )


async def build_provisioning(
    settings: Settings, *, tables: Tables, http: httpx.AsyncClient, credential: AsyncTokenCredential
) -> dict[str, Any]:
    keys = KeyRepository(tables)
    deployments = DeploymentStore(tables)
    audit = AuditLog(tables)
    masters = master_secret_provider(settings, credential=credential)
    validator = TokenValidator.from_settings(settings, http=http)
    arm_cred = await arm_credential(settings, service=credential)
    policy = rotation_policy(settings)
    exchange = KeyExchange(
        validator=validator, deployments=deployments, arm=ArmClient(http=http, credential=arm_cred,
        endpoint=settings.arm_endpoint), keys=keys, masters=masters, audit=audit, policy=policy,
    )
    return {
        "keys": keys, "teams": TeamStore(tables), "deployments": deployments, "audit": audit, "masters": masters,
        "validator": validator, "exchange": exchange, "closers": [arm_cred] if arm_cred is not credential else [],
    }


async def build_metering(
    settings: Settings, *, tables: Tables, http: httpx.AsyncClient, credential: AsyncTokenCredential,
    parts: dict[str, Any],
) -> dict[str, Any]:
    plans = PlanCatalog.load(settings.plans_file)
    meter_cred = await metering_credential(settings, service=credential)
    client = MarketplaceClient(http=http, credential=meter_cred, endpoint=settings.metering_endpoint)
    metering = MeteringDeps(tables=tables, deployments=parts["deployments"], plans=plans, client=client)
    usage = UsageWriter(tables=tables, settings=settings)

    async def bill_remaining_usage(deployment: Deployment) -> None:
        # The deployment is going away: its last partial hour is billed now, not at the next timer.
        await usage.flush()
        await flush_deployment(metering, deployment.deployment_id)

    webhook = MarketplaceWebhook(
        secret=settings.webhook_secret.get_secret_value(), deployments=parts["deployments"], keys=parts["keys"],
        audit=parts["audit"], on_deleting=bill_remaining_usage,
    )
    if meter_cred is not credential:
        parts["closers"].append(meter_cred)
    return {"plans": plans, "metering": metering, "usage": usage, "webhook": webhook}


def build_proxy(
    settings: Settings, *, tables: Tables, credential: AsyncTokenCredential, parts: dict[str, Any]
) -> dict[str, Any]:
    plans: PlanCatalog = parts["plans"]
    upstreams = UpstreamRegistry.from_settings(settings, credential=credential)
    missing = {m for plan in plans.plans for m in plan.models} - set(upstreams.aliases())
    if missing:
        raise ValueError(f"plans name models with no upstream: {sorted(missing)}")
    last_used = LastUsedRecorder(parts["keys"])
    resolver = PrincipalResolver(
        keys=parts["keys"], deployments=parts["deployments"], teams=parts["teams"],
        ttl_seconds=settings.principal_cache_ttl_seconds,
        negative_ttl_seconds=settings.principal_negative_cache_ttl_seconds, last_used=last_used,
        overrides=OverrideStore(tables),
    )
    # A key this instance revokes or retires stops working here at once; other instances within the cache TTL.
    parts["keys"].on_status_change(resolver.forget)
    limiter = PlanLimiter(tables, settings)
    byok, byok_admin, byok_vault = build_byok(
        settings, tables=tables, http=parts["http"], credential=credential, upstreams=upstreams.config,
        audit=parts["audit"], plans=plans,
    )
    if byok_vault is not None:
        parts["closers"].append(byok_vault)
    # Metrics count each call's usage record and refusal as they pass (core.metrics): no other hook in the proxy.
    metrics = parts["metrics"].metrics if "metrics" in parts else None
    usage = parts["usage"] if metrics is None else MeteredUsageSink(parts["usage"], metrics)
    refusals = RefusalCounter(tables, observe=None if metrics is None else metrics.refusal)
    proxy = ProxyService(
        resolver=resolver, plans=plans.get, limiter=limiter, usage=usage, upstreams=upstreams,
        settings=settings, refusals=refusals, byok=byok,
    )
    return {"last_used": last_used, "limiter": limiter, "proxy": proxy, "byok_admin": byok_admin}


def build_account(*, tables: Tables, parts: dict[str, Any]) -> dict[str, Any]:
    """The customers' own usage view (GET /v1/usage): after build_proxy, whose limiter holds the balances."""
    account = AccountUsage(
        month=MonthToDate(tables), plans=parts["plans"].get, keys=parts["keys"], balance=parts["limiter"].balance,
    )
    return {"account": account}


def build_admin(
    settings: Settings, *, tables: Tables, http: httpx.AsyncClient, parts: dict[str, Any]
) -> AdminService | None:
    """None when the admin tenant or audience is unset: the admin API then answers 503 (fail closed)."""
    return build_admin_service(
        settings, AdminSettings.from_settings(settings), http=http, tables=tables, keys=parts["keys"],
        audit=parts["audit"], plans=parts["plans"], deployments=_admin_deployments(settings, tables, parts),
    )


def _admin_deployments(settings: Settings, tables: Tables, parts: dict[str, Any]) -> AdminDeployments | None:
    # Without the key-exchange parts (a teams-only composition) the deployment routes answer 503.
    if "deployments" not in parts or "masters" not in parts:
        return None
    return AdminDeployments(
        tables=tables, store=parts["deployments"], keys=parts["keys"], masters=parts["masters"],
        policy=rotation_policy(settings), audit=parts["audit"],
    )
