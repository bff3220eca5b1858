"""Key exchange domain against real Azurite tables, with a fake ARM and a controllable clock."""

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from core.errors import AuthenticationFailed, NotFound, PermissionDenied
from core.tables import Tables
from keystore.keys import hash_key
from keystore.master_secret import MasterSecret, SettingMasterSecret
from keystore.models import KeyStatus
from keystore.repository import KeyRepository
from provisioning.arm import ApplicationIdentity, ArmClient, ManagedApplication
from provisioning.audit import AuditLog
from provisioning.deployment_store import DeploymentStore
from provisioning.entra import TokenClaims, TokenValidator
from provisioning.exchange import KeyExchange
from provisioning.notifications import deployment_id_for
from provisioning.rotation import RotationPolicy
from provisioning.webhook import MarketplaceWebhook
from tests.provisioning.events import RESOURCE_USAGE_ID, application_id, notification

TID = "3f1c9a52-0d3e-4b7a-8c61-2e5b7d9f0a14"
OID = "9b2e4c61-7a3d-4f18-b5c2-6d0e8a1f3b27"
APP_ID = application_id("exchange-app").lower()
START = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
POLICY = RotationPolicy(rotate_after=timedelta(days=30), grace=timedelta(hours=24))


class FakeArm:
    def __init__(self, application: ManagedApplication | None) -> None:
        self.application = application
        self.calls = 0

    async def get_application(self, application_id: str) -> ManagedApplication | None:
        self.calls += 1
        return self.application


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def claims(tid: str = TID, oid: str = OID, **extra: Any) -> TokenClaims:
    values: dict[str, Any] = {
        "tid": tid, "oid": oid, "aud": "api://liutong-test", "issuer": f"https://sts.windows.net/{tid}/",
        "version": "1.0", "kid": "k", "app_id": None, "xms_mirid": None, "roles": (),
        "expires_at": START + timedelta(hours=1),
    }
    values.update(extra)
    return TokenClaims(**values)


def arm_application(**overrides: Any) -> ManagedApplication:
    values: dict[str, Any] = {
        "application_id": APP_ID, "plan_name": "standard", "resource_usage_id": RESOURCE_USAGE_ID,
        "provisioning_state": "Succeeded", "identities": (ApplicationIdentity(tenant_id=TID, principal_id=OID),),
    }
    values.update(overrides)
    return ManagedApplication(**values)


class SwitchableMaster:
    """A master secret provider the operator can change under a running service."""

    def __init__(self, value: str) -> None:
        self.inner = SettingMasterSecret(value)

    async def current(self) -> MasterSecret:
        return await self.inner.current()

    async def get(self, version: str) -> MasterSecret | None:
        return await self.inner.get(version)

    async def close(self) -> None:
        return None


@dataclasses.dataclass
class World:
    exchange: KeyExchange
    webhook: MarketplaceWebhook
    arm: FakeArm
    keys: KeyRepository
    deployments: DeploymentStore
    clock: Clock
    masters: SwitchableMaster


@pytest.fixture
async def world(tables: Tables) -> World:
    return await make_world(tables)


async def make_world(tables: Tables) -> World:
    clock = Clock()
    arm = FakeArm(arm_application())
    keys = KeyRepository(tables)
    deployments = DeploymentStore(tables)
    audit = AuditLog(tables)
    masters = SwitchableMaster("m" * 40)
    exchange = KeyExchange(
        validator=cast(TokenValidator, None), deployments=deployments, arm=cast(ArmClient, arm), keys=keys,
        masters=masters, audit=audit, policy=POLICY, now=clock,
    )
    webhook = MarketplaceWebhook(secret="s", deployments=deployments, keys=keys, audit=audit, now=clock)
    await webhook.handle(notification(app_id=APP_ID))
    return World(exchange, webhook, arm, keys, deployments, clock, masters)


async def test_repeated_fetches_return_the_same_key_and_arm_is_asked_once(world: World) -> None:
    first = await world.exchange.exchange(claims(), APP_ID)
    second = await world.exchange.exchange(claims(), APP_ID)
    assert first.key == second.key and first.key_id == second.key_id
    assert first.rotates_at == START + POLICY.rotate_after
    assert first.previous_key_valid_until is None
    assert world.arm.calls == 1
    record = await world.keys.get_by_hash(hash_key(first.key))
    assert record is not None and record.status is KeyStatus.ACTIVE


async def test_rotation_when_due_keeps_the_previous_key_for_the_grace_period(world: World) -> None:
    old = await world.exchange.exchange(claims(), APP_ID)
    world.clock.now = START + POLICY.rotate_after + timedelta(seconds=1)
    new = await world.exchange.exchange(claims(), APP_ID)
    assert new.key != old.key
    assert new.previous_key_valid_until == world.clock.now + POLICY.grace
    previous = await world.keys.get_by_hash(hash_key(old.key))
    assert previous is not None and previous.status is KeyStatus.ROTATING_OUT
    assert previous.is_usable(world.clock.now + POLICY.grace - timedelta(seconds=1))
    assert not previous.is_usable(world.clock.now + POLICY.grace + timedelta(seconds=1))


async def test_forced_rotation(world: World) -> None:
    old = await world.exchange.exchange(claims(), APP_ID)
    new = await world.exchange.exchange(claims(), APP_ID, force_rotate=True)
    assert new.key != old.key
    assert (await world.exchange.exchange(claims(), APP_ID)).key == new.key


async def test_fifty_concurrent_exchanges_due_for_rotation_create_one_generation(world: World) -> None:
    await world.exchange.exchange(claims(), APP_ID)
    world.clock.now = START + POLICY.rotate_after + timedelta(minutes=1)
    grants = await asyncio.gather(*(world.exchange.exchange(claims(), APP_ID) for _ in range(50)))
    assert len({g.key for g in grants}) == 1
    deployment = await world.deployments.get(deployment_id_for(APP_ID))
    assert deployment is not None and deployment.generation == 2
    owned = await world.keys.list_for_owner(deployment_id=deployment.deployment_id)
    assert len(owned) == 2


@pytest.mark.parametrize(
    ("application", "who"),
    [
        (None, claims()),
        (arm_application(), claims(oid="00000000-0000-0000-0000-00000000beef")),
        (arm_application(), claims(tid="00000000-0000-0000-0000-00000000cafe")),
        (arm_application(plan_name="premium"), claims()),
        (arm_application(resource_usage_id="00000000-0000-0000-0000-000000000001"), claims()),
        (arm_application(application_id=application_id("other").lower()), claims()),
    ],
    ids=["not-in-arm", "other-oid", "other-tid", "plan-mismatch", "usage-id-mismatch", "other-application"],
)
async def test_binding_is_refused_unless_arm_proves_it(
    world: World, application: ManagedApplication | None, who: TokenClaims
) -> None:
    world.arm.application = application
    with pytest.raises(PermissionDenied):
        await world.exchange.exchange(who, APP_ID)
    assert await world.keys.list_for_owner(deployment_id=deployment_id_for(APP_ID)) == []


async def test_a_different_identity_later_is_rechecked_with_arm(world: World) -> None:
    await world.exchange.exchange(claims(), APP_ID)
    stranger = claims(oid="00000000-0000-0000-0000-00000000beef")
    with pytest.raises(PermissionDenied):
        await world.exchange.exchange(stranger, APP_ID)
    assert world.arm.calls == 2


async def test_xms_mirid_of_another_application_is_refused(world: World) -> None:
    with pytest.raises(AuthenticationFailed):
        await world.exchange.exchange(claims(xms_mirid=application_id("other")), APP_ID)
    assert (await world.exchange.exchange(claims(xms_mirid=APP_ID.upper()), APP_ID)).key


async def test_unknown_application_is_404(world: World) -> None:
    with pytest.raises(NotFound):
        await world.exchange.exchange(claims(), application_id("never-notified"))


@pytest.mark.parametrize("event", [("PUT", "Failed"), ("DELETE", "Deleting"), ("DELETE", "Deleted")])
async def test_inactive_deployments_are_refused_and_delete_revokes(world: World, event: tuple[str, str]) -> None:
    grant = await world.exchange.exchange(claims(), APP_ID)
    await world.exchange.exchange(claims(), APP_ID, force_rotate=True)
    await world.webhook.handle(notification(*event, app_id=APP_ID, event_time="2026-11-23T10:00:00Z"))
    with pytest.raises(PermissionDenied):
        await world.exchange.exchange(claims(), APP_ID)
    owned = await world.keys.list_for_owner(deployment_id=deployment_id_for(APP_ID))
    revoked = {r.status is KeyStatus.REVOKED for r in owned}
    assert revoked == ({True} if event[0] == "DELETE" else {False})
    record = await world.keys.get_by_hash(hash_key(grant.key))
    assert record is not None


async def test_master_secret_change_rotates_to_a_new_generation(world: World, tables: Tables) -> None:
    first = await world.exchange.exchange(claims(), APP_ID)
    world.masters.inner = SettingMasterSecret("n" * 40)  # the operator rotated the master secret
    second = await world.exchange.exchange(claims(), APP_ID)
    assert second.key != first.key and second.key_id != first.key_id
    assert second.key_id.endswith((await world.masters.current()).version)




async def test_every_provisioning_event_is_audited_without_keys(world: World, tables: Tables) -> None:
    grant = await world.exchange.exchange(claims(), APP_ID)
    rotated = await world.exchange.exchange(claims(), APP_ID, force_rotate=True)
    with pytest.raises(PermissionDenied):
        await world.exchange.exchange(claims(oid="00000000-0000-0000-0000-00000000beef"), APP_ID)
    await world.webhook.handle(notification("DELETE", "Deleted", app_id=APP_ID, event_time="2026-11-23T10:00:00Z"))
    rows = [dict(e) async for e in tables.table("audit").list_entities()]
    actions = {row["action"] for row in rows}
    assert {
        "provisioning.webhook.put", "provisioning.webhook.delete", "provisioning.bind", "provisioning.mint",
        "provisioning.rotate", "provisioning.refuse", "provisioning.revoke",
    } <= actions
    minted = next(row for row in rows if row["action"] == "provisioning.mint")
    assert (minted["actor_oid"], minted["actor_tid"], minted["plan_id"]) == (OID, TID, "standard")
    assert minted["resource_id"] == APP_ID and minted["key_id"] == grant.key_id
    revoked = {row["key_id"] for row in rows if row["action"] == "provisioning.revoke"}
    assert revoked == {grant.key_id, rotated.key_id}
    refusal = next(row for row in rows if row["action"] == "provisioning.refuse")
    assert refusal["outcome"] == "refused" and refusal["actor_oid"].endswith("beef")
    text = repr(rows)
    assert grant.key not in text and rotated.key not in text
