"""The production getter builds the admin service from the worker's services and LIUTONG_ADMIN_* settings."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import SimpleNamespace

import httpx
import pytest
from starlette.requests import Request

import services
import wiring
from admin import handlers
from admin.routes import ADMIN_ROUTES
from admin.service import AdminService
from core.errors import ServiceUnavailable
from core.settings import Settings
from core.tables import Tables
from keystore.repository import KeyRepository
from limits.plans import PlanCatalog
from provisioning.audit import AuditLog
from tests.provisioning.tokens import TENANT


def test_handlers_keep_real_annotations() -> None:
    for _, _, handler in ADMIN_ROUTES:
        assert inspect.signature(handler).parameters["req"].annotation is Request


async def test_getter_serves_the_wired_service_and_fails_closed_unconfigured(
    tables: Tables, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with httpx.AsyncClient() as http:
        unconfigured = make_settings()
        configured = make_settings(admin_tenant_id=TENANT, admin_app_id_uri="api://liutong-admin")
        parts = SimpleNamespace(admin=None)

        async def current() -> SimpleNamespace:
            return parts

        monkeypatch.setattr(services, "get_services", current)
        def built(settings: Settings) -> AdminService | None:
            plans = PlanCatalog.load(settings.plans_file)
            collaborators = {"keys": KeyRepository(tables), "audit": AuditLog(tables), "plans": plans}
            return wiring.build_admin(settings, tables=tables, http=http, parts=collaborators)

        parts.admin = built(configured)
        assert isinstance(parts.admin, AdminService)
        assert await handlers.get_admin_service() is parts.admin
        parts.admin = built(unconfigured)
        assert parts.admin is None
        with pytest.raises(ServiceUnavailable):
            await handlers.get_admin_service()
