"""Builds the BYOK parts (composition): the proxy's lookup of teams' own credentials and its administration."""

from __future__ import annotations

import httpx
from azure.core.credentials_async import AsyncTokenCredential

from admin.byok import AdminByok
from core.clock import utc_now
from core.settings import Settings
from core.tables import Tables
from limits.plans import PlanCatalog
from provisioning.audit import AuditLog
from proxy.byok import ByokCredentials
from proxy.byok_store import ByokStore
from proxy.byok_vault import KeyVaultByok, byok_vault
from proxy.upstreams import UpstreamsConfig


def build_byok(
    settings: Settings, *, tables: Tables, http: httpx.AsyncClient, credential: AsyncTokenCredential,
    upstreams: UpstreamsConfig, audit: AuditLog, plans: PlanCatalog,
) -> tuple[ByokCredentials | None, AdminByok, KeyVaultByok | None]:
    """Without a vault the proxy uses Liutong's credentials only (plans that require BYOK refuse) and
    registration answers 503. The vault is returned for closing."""
    store = ByokStore(tables)
    vault = byok_vault(settings, credential=credential)
    credentials = None
    if vault is not None:
        credentials = ByokCredentials(
            entries=store, secrets=vault, upstreams=upstreams, ttl_seconds=settings.principal_cache_ttl_seconds,
        )
    admin = AdminByok(
        store=store, vault=vault, upstreams=upstreams, http=http, audit=audit, plans=plans, now=utc_now,
        on_change=credentials.forget if credentials is not None else None,
    )
    return credentials, admin, vault
