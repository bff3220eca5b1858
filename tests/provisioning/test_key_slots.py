"""The interleavings of rotations that concurrency only sometimes produces, forced one at a time."""

import dataclasses
from typing import Any

import pytest

from core.errors import ConcurrencyConflict
from core.tables import Tables
from keystore.keys import hash_key
from keystore.master_secret import SettingMasterSecret
from keystore.models import NEVER_ISSUED, NO_GRACE, SUPERSEDED, KeyStatus
from provisioning.audit import AuditEvent, AuditLog
from provisioning.deployments import Deployment
from provisioning.key_slots import KeySlots
from provisioning.notifications import deployment_id_for
from tests.provisioning.test_exchange import APP_ID, POLICY, World, claims, make_world

DEPLOYMENT_ID = deployment_id_for(APP_ID)


def audit_for(action: str, deployment: Deployment, key_id: str | None, reason: str | None) -> AuditEvent:
    return AuditEvent(action=f"test.{action}", resource_id=deployment.application_id, key_id=key_id, reason=reason)


@pytest.fixture
async def world(tables: Tables) -> World:
    return await make_world(tables)


def slots(world: World, tables: Tables) -> KeySlots:
    return KeySlots(store=world.deployments, keys=world.keys, masters=world.masters, policy=POLICY,
                    audit=AuditLog(tables))


async def record(world: World) -> Deployment:
    found = await world.deployments.get(DEPLOYMENT_ID)
    assert found is not None
    return found


async def revocations(tables: Tables) -> list[tuple[str, str]]:
    rows = [dict(e) async for e in tables.table("audit").list_entities()]
    return sorted((r["key_id"], r["reason"]) for r in rows if r["action"] == "test.revoke")


async def status(world: World, key: str) -> KeyStatus:
    found = await world.keys.get_by_hash(hash_key(key))
    assert found is not None
    return found.status


async def test_the_pushed_out_key_is_revoked_even_when_the_write_then_loses(world: World, tables: Tables) -> None:
    first = await world.exchange.exchange(claims(), APP_ID)
    second = await world.exchange.exchange(claims(), APP_ID, force_rotate=True)
    stale = await record(world)
    await world.deployments.replace(dataclasses.replace(stale, error_message="an unrelated change"))
    with pytest.raises(ConcurrencyConflict):
        await slots(world, tables).rotate(stale, now=world.clock.now, audit_for=audit_for)
    assert await status(world, first.key) is KeyStatus.REVOKED
    assert await status(world, second.key) is KeyStatus.ACTIVE
    # The lost generation is not revoked: the record is not past it, and a retry derives the same key.
    assert await revocations(tables) == [(first.key_id, SUPERSEDED)]
    after = await world.exchange.exchange(claims(), APP_ID, force_rotate=True)
    assert (await record(world)).previous_key_id == second.key_id and await status(world, after.key) is KeyStatus.ACTIVE


async def test_a_generation_the_record_moved_past_without_it_is_revoked(world: World, tables: Tables) -> None:
    await world.exchange.exchange(claims(), APP_ID)
    stale = await record(world)
    world.masters.inner = SettingMasterSecret("n" * 40)  # the racer derives under another master version
    winner = await world.exchange.exchange(claims(), APP_ID, force_rotate=True)
    world.masters.inner = SettingMasterSecret("m" * 40)
    with pytest.raises(ConcurrencyConflict):
        await slots(world, tables).rotate(stale, now=world.clock.now, audit_for=audit_for)
    owned = {r.key_id: r for r in await world.keys.list_for_owner(deployment_id=DEPLOYMENT_ID)}
    orphan = next(r for r in owned.values() if r.generation == 2 and r.key_id != winner.key_id)
    assert orphan.status is KeyStatus.REVOKED
    assert owned[winner.key_id].status is KeyStatus.ACTIVE
    assert (orphan.key_id, NEVER_ISSUED) in await revocations(tables)


async def test_dropping_the_previous_slot_follows_a_record_that_moved(world: World, tables: Tables) -> None:
    await world.exchange.exchange(claims(), APP_ID)
    middle = await world.exchange.exchange(claims(), APP_ID, force_rotate=True)
    stale = await record(world)
    newest = await world.exchange.exchange(claims(), APP_ID, force_rotate=True)  # a rotation lands meanwhile
    emptied = await slots(world, tables).drop_previous(stale, now=world.clock.now, audit_for=audit_for)
    assert emptied.previous_key_hash is None and emptied.current_key_id == newest.key_id
    assert await status(world, middle.key) is KeyStatus.REVOKED and await status(world, newest.key) is KeyStatus.ACTIVE
    reasons: dict[str, Any] = dict(await revocations(tables))
    assert reasons[middle.key_id] == NO_GRACE


async def test_exchange_with_revoke_previous_hands_out_the_only_valid_key(world: World) -> None:
    leaked = await world.exchange.exchange(claims(), APP_ID)
    fresh = await world.exchange.exchange(claims(), APP_ID, force_rotate=True, revoke_previous=True)
    assert fresh.previous_key_valid_until is None and await status(world, leaked.key) is KeyStatus.REVOKED
    again = await world.exchange.exchange(claims(), APP_ID)
    assert again.key == fresh.key and again.previous_key_valid_until is None
