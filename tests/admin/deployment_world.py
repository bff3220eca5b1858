"""The deployments-admin test world: records made by the real webhook and key exchange over Azurite,
an ARM fake that answers per application, and the admin routes wired to the same stores and clock."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx

from admin.deployments import AdminDeployments
from admin.service import AdminService
from core.tables import Tables
from keystore.keys import hash_key
from keystore.master_secret import SettingMasterSecret
from keystore.models import KeyStatus
from keystore.repository import KeyRepository
from provisioning.arm import ArmClient, ManagedApplication
from provisioning.audit import AuditLog
from provisioning.deployment_store import DeploymentStore
from provisioning.entra import TokenValidator
from provisioning.exchange import KeyExchange, KeyGrant
from provisioning.notifications import deployment_id_for
from provisioning.webhook import MarketplaceWebhook
from tests.admin.conftest import Clock, auth_header
from tests.provisioning.events import PLAN, application_id, notification
from tests.provisioning.test_exchange import POLICY, arm_application, claims

H = auth_header()


class Arm:
    """ARM's answer per application, as the stand-in would give it."""

    def __init__(self) -> None:
        self.applications: dict[str, ManagedApplication] = {}

    async def get_application(self, application_id: str) -> ManagedApplication | None:
        return self.applications.get(application_id)


@dataclasses.dataclass
class World:
    client: httpx.AsyncClient
    tables: Tables
    clock: Clock
    webhook: MarketplaceWebhook
    exchange: KeyExchange
    keys: KeyRepository
    store: DeploymentStore
    arm: Arm

    async def deploy(self, name: str, state: str = "Succeeded", plan: dict[str, str] = PLAN) -> str:
        app_id = application_id(name).lower()
        when = (self.clock.now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        await self.webhook.handle(notification("PUT", state, app_id=app_id, event_time=when, plan=plan))
        self.arm.applications[app_id] = arm_application(application_id=app_id, plan_name=plan["name"])
        return deployment_id_for(app_id)

    async def delete(self, deployment_id: str) -> None:
        record = await self.store.get(deployment_id)
        assert record is not None
        when = (self.clock.now - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        await self.webhook.handle(notification("DELETE", "Deleted", app_id=record.application_id, event_time=when))

    async def fetch(self, deployment_id: str, *, force_rotate: bool = False) -> KeyGrant:
        record = await self.store.get(deployment_id)
        assert record is not None
        return await self.exchange.exchange(claims(), record.application_id, force_rotate=force_rotate)

    async def post(self, deployment_id: str, action: str, **kwargs: Any) -> httpx.Response:
        # Exchange audit rows carry the real time: keep the admin's clock in step so history reads in order.
        self.clock.now = max(self.clock.now, datetime.now(UTC))
        return await self.client.post(f"/api/admin/deployments/{deployment_id}/{action}", headers=H, **kwargs)

    async def status(self, key: str) -> KeyStatus:
        record = await self.keys.get_by_hash(hash_key(key))
        assert record is not None
        return record.status

    async def usable(self, key: str, after: timedelta = timedelta(0)) -> bool:
        record = await self.keys.get_by_hash(hash_key(key))
        return record is not None and record.is_usable(self.clock.now + after)


def make_world(client: httpx.AsyncClient, admin_service: AdminService, tables: Tables, clock: Clock) -> World:
    keys, store, audit = KeyRepository(tables), DeploymentStore(tables), AuditLog(tables)
    masters, arm = SettingMasterSecret("m" * 40), Arm()
    exchange = KeyExchange(
        validator=cast(TokenValidator, None), deployments=store, arm=cast(ArmClient, arm), keys=keys,
        masters=masters, audit=audit, policy=POLICY, now=clock,
    )
    webhook = MarketplaceWebhook(secret="s", deployments=store, keys=keys, audit=audit, now=clock)
    admin_service.deployments = AdminDeployments(
        tables=tables, store=store, keys=keys, masters=masters, policy=POLICY, audit=audit, now=clock
    )
    return World(client, tables, clock, webhook, exchange, keys, store, arm)


async def admin_audit(world: World, action: str) -> list[dict[str, Any]]:
    rows = await AuditLog(world.tables).list_day(world.clock.now)
    return [r for r in rows if r["action"] == action]
