"""Suspending a Marketplace customer: its keys and key exchange are refused until resume, which restores the
same key; ARM's notifications keep being recorded; every change is audited with actor and reason."""

from __future__ import annotations

import httpx
import pytest

from admin.service import AdminService
from core.errors import PermissionDenied
from core.tables import Tables
from tests.admin.conftest import Clock, snapshot
from tests.admin.deployment_world import World, admin_audit, make_world
from tests.provisioning.events import notification
from tests.provisioning.test_exchange import claims
from tests.provisioning.tokens import OID


@pytest.fixture
def world(client: httpx.AsyncClient, admin_service: AdminService, tables: Tables, clock: Clock) -> World:
    return make_world(client, admin_service, tables, clock)


async def key_rows(world: World, dep: str) -> list[str]:
    return sorted(r.key_id for r in await world.keys.list_for_owner(deployment_id=dep))


async def test_suspend_refuses_the_exchange_and_resume_restores_the_same_key(world: World) -> None:
    dep = await world.deploy("app-unpaid")
    grant = await world.fetch(dep)
    suspended = await world.post(dep, "suspend", json={"reason": "invoice 42 unpaid"})
    assert suspended.status_code == 200, suspended.text
    body = suspended.json()
    assert body["suspended"] is True and body["suspended_reason"] == "invoice 42 unpaid"
    assert body["suspended_at"] == world.clock.now.isoformat() and body["current_key_id"] == grant.key_id

    keys_before = await key_rows(world, dep)
    for force in (False, True):
        with pytest.raises(PermissionDenied) as refused:
            await world.fetch(dep, force_rotate=force)
        assert refused.value.code == "account_suspended" and "publisher" in refused.value.message
    assert await key_rows(world, dep) == keys_before  # nothing minted
    assert await world.usable(grant.key)  # kept: the proxy refuses it while suspended, resume restores it

    resumed = await world.post(dep, "resume", json={"reason": "paid"})
    assert resumed.status_code == 200 and resumed.json()["suspended"] is False
    assert resumed.json()["suspended_at"] is None and resumed.json()["suspended_reason"] is None
    again = await world.fetch(dep)
    assert again.key == grant.key and await key_rows(world, dep) == keys_before

    suspends = await admin_audit(world, "admin.deployment.suspend")
    resumes = await admin_audit(world, "admin.deployment.resume")
    assert [(r["reason"], r["actor_oid"]) for r in suspends] == [("invoice 42 unpaid", OID)]
    assert [r["reason"] for r in resumes] == ["paid"]


async def test_suspending_twice_writes_and_audits_once(world: World) -> None:
    dep = await world.deploy("app-twice-suspended")
    first = (await world.post(dep, "suspend", json={"reason": "abuse"})).json()
    world.clock.now = world.clock.now.replace(microsecond=7)
    before = await snapshot(world.tables)
    second = await world.post(dep, "suspend", json={"reason": "again"})
    assert second.status_code == 200 and second.json()["suspended_at"] == first["suspended_at"]
    assert await snapshot(world.tables) == before
    assert (await world.post(dep, "resume")).status_code == 200
    assert (await world.post(dep, "resume")).status_code == 200
    assert len(await admin_audit(world, "admin.deployment.resume")) == 1


async def test_arm_notifications_are_recorded_while_suspended_and_keep_the_suspension(world: World) -> None:
    dep = await world.deploy("app-arm-updates")
    await world.post(dep, "suspend", json={"reason": "misuse"})
    record = await world.store.get(dep)
    assert record is not None
    await world.webhook.handle(notification(
        "PATCH", "Succeeded", app_id=record.application_id, event_time="2026-12-31T00:00:00Z",
        plan={"publisher": "liutong", "product": "liutong-llm", "name": "premium", "version": "1.0.0"},
    ))
    updated = await world.store.get(dep)
    assert updated is not None and updated.plan_id == "premium" and updated.suspended
    assert updated.suspended_reason == "misuse"


async def test_a_deleted_deployment_cannot_be_suspended(world: World) -> None:
    dep = await world.deploy("app-gone")
    await world.fetch(dep)
    await world.delete(dep)
    before = await snapshot(world.tables)
    for action in ("suspend", "resume"):
        response = await world.post(dep, action)
        assert response.status_code == 404 and response.json()["error"]["param"] == "deployment_id"
    assert await snapshot(world.tables) == before


async def test_a_suspended_deployment_can_still_be_revoked_and_rotated(world: World) -> None:
    dep = await world.deploy("app-compromised")
    grant = await world.fetch(dep)
    await world.post(dep, "suspend")
    assert (await world.post(dep, "rotate", json={"revoke_previous": True})).status_code == 200
    assert not await world.usable(grant.key)
    assert (await world.post(dep, "revoke")).status_code == 200
    with pytest.raises(PermissionDenied):
        await world.exchange.exchange(claims(), (await world.store.get(dep)).application_id)  # type: ignore[union-attr]
