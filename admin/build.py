"""Builds the AdminService from settings (composition; the handlers only look it up)."""

from __future__ import annotations

import httpx

from admin.auth import AdminAuthenticator
from admin.deployments import AdminDeployments
from admin.service import AdminService
from admin.settings import AdminSettings
from core.settings import Settings
from core.tables import Tables
from keystore.repository import KeyRepository
from limits.plans import PlanCatalog
from provisioning.audit import AuditLog
from usage.retention import RetentionPolicy


def build_admin_service(
    settings: Settings,
    admin: AdminSettings,
    *,
    http: httpx.AsyncClient,
    tables: Tables,
    keys: KeyRepository,
    audit: AuditLog,
    plans: PlanCatalog,
    deployments: AdminDeployments | None = None,
) -> AdminService | None:
    """None when the admin tenant or audience is unset: the admin API then answers 503 (fail closed)."""
    if not admin.configured:
        return None
    return AdminService(
        auth=AdminAuthenticator.from_settings(settings, admin, http=http),
        tables=tables, keys=keys, audit=audit, plans=plans,
        rotation_grace_hours=admin.rotation_grace_hours, max_body_bytes=settings.max_body_bytes,
        deployments=deployments, usage_retention=RetentionPolicy.from_settings(settings),
    )
