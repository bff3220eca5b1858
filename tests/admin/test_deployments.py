"""Deployments admin over real Azurite: records made by the real webhook and key exchange, then listed,
shown with their audit history, rotated and revoked through the admin routes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

import httpx
import pytest

import wiring
from admin.deployments import AdminDeployments
from admin.service import AdminService
from core.settings import Settings
from core.tables import Tables
from keystore.keys import hash_key
from keystore.master_secret import SettingMasterSecret
from keystore.models import NO_GRACE, SUPERSEDED, KeyStatus
from keystore.repository import KeyRepository
from limits.plans import PlanCatalog
from provisioning.audit import AuditLog
from provisioning.deployment_store import DeploymentStore
from provisioning.notifications import deployment_id_for
from tests.admin.conftest import Clock, assert_invalid_request, snapshot
from tests.admin.deployment_world import H, World, admin_audit, make_world
from tests.admin.test_auth import BAD_CREDENTIALS
from tests.provisioning.events import PLAN, application_id
from tests.provisioning.test_exchange import POLICY
from tests.provisioning.tokens import OID, TENANT

FIELDS = {
    "object", "deployment_id", "application_id", "state", "last_event_type", "plan", "plan_id", "resource_usage_id",
    "first_event_time", "last_event_time", "bound_tid", "bound_oid", "bound_at", "generation", "current_key_id",
    "previous_key_id", "previous_valid_until", "rotated_at", "rotates_at", "error_code", "error_message",
    "suspended", "suspended_at", "suspended_reason",
}


@pytest.fixture
def world(client: httpx.AsyncClient, admin_service: AdminService, tables: Tables, clock: Clock) -> World:
    return make_world(client, admin_service, tables, clock)


async def test_list_and_show_never_reveal_a_key(world: World) -> None:
    dep = await world.deploy("app-one")
    await world.deploy("app-two")
    grant = await world.fetch(dep)
    listing = await world.client.get("/api/admin/deployments", headers=H)
    assert listing.status_code == 200, listing.text
    data = {d["deployment_id"]: d for d in listing.json()["data"]}
    assert len(data) == 2 and set(data[dep]) == FIELDS
    item = data[dep]
    assert item["application_id"] == application_id("app-one").lower() and item["state"] == "Succeeded"
    assert item["plan"] == PLAN and item["plan_id"] == "standard" and item["generation"] == 1
    assert item["current_key_id"] == grant.key_id and item["bound_tid"] and item["bound_oid"]
    assert item["rotates_at"] == grant.rotates_at.isoformat()
    shown = await world.client.get(f"/api/admin/deployments/{dep}", headers=H)
    body = shown.json()
    assert {k: body[k] for k in FIELDS} == item and body["history_days"] == 90 and not body["history_truncated"]
    assert [e["action"] for e in body["history"]] == [
        "provisioning.webhook.put", "provisioning.bind", "provisioning.mint"
    ]
    assert body["history"][2]["key_id"] == grant.key_id
    for text in (listing.text, shown.text):
        assert grant.key not in text and hash_key(grant.key) not in text and grant.key[3:] not in text


async def test_filters_and_application_lookup(world: World) -> None:
    ok = await world.deploy("app-ok")
    accepted = await world.deploy("app-accepted", "Accepted")
    starter = await world.deploy("app-starter", plan={**PLAN, "name": "starter"})
    gone = await world.deploy("app-gone")
    await world.delete(gone)

    async def ids(**params: Any) -> set[str]:
        response = await world.client.get("/api/admin/deployments", params=params, headers=H)
        assert response.status_code == 200, response.text
        return {d["deployment_id"] for d in response.json()["data"]}

    assert await ids() == {ok, accepted, starter, gone}
    assert await ids(state="SUCCEEDED") == {ok, starter}
    assert await ids(state="accepted") == {accepted}
    assert await ids(state="deleted") == {gone}
    assert await ids(plan="starter") == {starter}
    assert await ids(plan="standard", state="succeeded") == {ok}
    assert await ids(state="failed") == set()
    assert await ids(application_id=application_id("APP-OK").upper()) == {ok}
    assert await ids(application_id=application_id("app-ok"), state="accepted") == set()
    assert await ids(application_id=application_id("never")) == set()


async def test_pagination_returns_every_deployment_once(world: World) -> None:
    made = {await world.deploy(f"page-{i}", "Accepted" if i % 3 == 0 else "Succeeded") for i in range(8)}

    async def walk(**params: Any) -> list[str]:
        seen: list[str] = []
        token: str | None = None
        while True:
            query = {"limit": 3, **params, **({"continuation_token": token} if token else {})}
            body = (await world.client.get("/api/admin/deployments", params=query, headers=H)).json()
            assert len(body["data"]) <= 3 and body["has_more"] == (body["continuation_token"] is not None)
            seen += [d["deployment_id"] for d in body["data"]]
            token = body["continuation_token"]
            if token is None:
                return seen

    every = await walk()
    assert sorted(every) == sorted(made) and len(every) == len(made)
    succeeded = await walk(state="succeeded")
    assert len(succeeded) == len(set(succeeded)) == 5


async def test_rotate_keeps_the_old_key_for_the_grace_and_the_exchange_returns_the_new_one(world: World) -> None:
    dep = await world.deploy("app-rotate")
    old = await world.fetch(dep)
    response = await world.post(dep, "rotate", json={"reason": "quarterly"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["generation"] == 2 and body["previous_key_id"] == old.key_id
    assert body["current_key_id"] != old.key_id
    assert body["previous_valid_until"] == (world.clock.now + POLICY.grace).isoformat()
    assert old.key not in response.text
    assert await world.status(old.key) is KeyStatus.ROTATING_OUT
    assert await world.usable(old.key, POLICY.grace - timedelta(seconds=1))
    assert not await world.usable(old.key, POLICY.grace + timedelta(seconds=1))
    new = await world.fetch(dep)
    assert new.key != old.key and new.key_id == body["current_key_id"] and await world.usable(new.key)
    assert new.previous_key_valid_until == world.clock.now + POLICY.grace
    rotated = await admin_audit(world, "admin.deployment.rotate")
    retired = await admin_audit(world, "admin.deployment.retire")
    assert [(r["key_id"], r["actor_oid"], r["actor_tid"], r["reason"]) for r in rotated] == [
        (new.key_id, OID, TENANT, "quarterly")
    ]
    assert [r["key_id"] for r in retired] == [old.key_id]
    assert rotated[0]["resource_id"] == new.application_id and rotated[0]["plan_id"] == "standard"
    history = (await world.client.get(f"/api/admin/deployments/{dep}", headers=H)).json()["history"]
    # Both rows carry the same instant of the test clock: their order between themselves is not defined.
    assert sorted(e["action"] for e in history[-2:]) == ["admin.deployment.retire", "admin.deployment.rotate"]


async def test_rotate_twice_revokes_the_key_pushed_out_of_the_previous_slot(world: World) -> None:
    dep = await world.deploy("app-twice")
    first = await world.fetch(dep)
    assert (await world.post(dep, "rotate")).status_code == 200
    second = (await world.post(dep, "rotate")).json()
    owned = {r.key_id: r for r in await world.keys.list_for_owner(deployment_id=dep)}
    assert len(owned) == 3
    assert owned[first.key_id].status is KeyStatus.REVOKED and owned[first.key_id].revoked_at == world.clock.now
    assert owned[second["previous_key_id"]].status is KeyStatus.ROTATING_OUT
    assert owned[second["current_key_id"]].status is KeyStatus.ACTIVE
    assert [r.key_id for r in owned.values() if r.is_usable(world.clock.now)] == [
        second["previous_key_id"], second["current_key_id"]]
    revoked = await admin_audit(world, "admin.deployment.revoke")
    assert [(r["key_id"], r["reason"]) for r in revoked] == [(first.key_id, SUPERSEDED)]


async def test_rotate_with_revoke_previous_leaves_only_the_new_key(world: World) -> None:
    dep = await world.deploy("app-leaked")
    leaked = await world.fetch(dep)
    response = await world.post(dep, "rotate", json={"revoke_previous": True, "reason": "key leaked"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["previous_key_id"] is None and body["previous_valid_until"] is None
    assert not await world.usable(leaked.key)
    usable = [r.key_id for r in await world.keys.list_for_owner(deployment_id=dep) if r.is_usable(world.clock.now)]
    assert usable == [body["current_key_id"]]
    assert (await world.fetch(dep)).key_id == body["current_key_id"]
    revoked = await admin_audit(world, "admin.deployment.revoke")
    assert [(r["key_id"], r["reason"]) for r in revoked] == [(leaked.key_id, f"{NO_GRACE}; key leaked")]


@pytest.mark.parametrize("body", [{"revoke_previous": "yes"}, {"revoke_previous": 1}, {"revoke_previous": None},
                                  {"grace": 0}])
async def test_rotate_refuses_a_bad_revoke_previous_and_changes_nothing(world: World, body: dict[str, Any]) -> None:
    dep = await world.deploy("app-bad-flag")
    await world.fetch(dep)
    before = await snapshot(world.tables)
    response = await world.post(dep, "rotate", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == next(iter(body))
    assert await snapshot(world.tables) == before


async def test_rotate_refuses_deployments_without_a_key_or_deleted(world: World) -> None:
    never = await world.deploy("app-never")
    gone = await world.deploy("app-deleted")
    await world.fetch(gone)
    await world.delete(gone)
    before = await snapshot(world.tables)
    for dep, code in ((never, "no_key"), (gone, "deployment_inactive")):
        response = await world.post(dep, "rotate")
        assert response.status_code == 409, response.text
        assert response.json()["error"]["code"] == code
    assert (await world.post(never, "revoke")).json()["error"]["code"] == "no_key"
    assert await snapshot(world.tables) == before


async def test_revoke_kills_current_and_previous_and_the_next_exchange_gets_a_fresh_key(world: World) -> None:
    dep = await world.deploy("app-compromised")
    first = await world.fetch(dep)
    second = await world.fetch(dep, force_rotate=True)
    assert await world.usable(first.key) and await world.usable(second.key)
    response = await world.post(dep, "revoke", json={"reason": "leaked in a log"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert sorted(body["revoked_key_ids"]) == sorted([first.key_id, second.key_id])
    assert body["generation"] == 3 and body["current_key_id"] is None and body["previous_key_id"] is None
    for key in (first.key, second.key):
        assert await world.status(key) is KeyStatus.REVOKED and not await world.usable(key)
    rows = await admin_audit(world, "admin.deployment.revoke")
    assert sorted(r["key_id"] for r in rows) == sorted(body["revoked_key_ids"])
    assert {(r["actor_oid"], r["reason"]) for r in rows} == {(OID, "leaked in a log")}
    before = await snapshot(world.tables)
    again = await world.post(dep, "revoke")
    assert again.status_code == 200 and again.json()["revoked_key_ids"] == []
    assert await snapshot(world.tables) == before
    fresh = await world.fetch(dep)
    assert fresh.key not in (first.key, second.key) and await world.usable(fresh.key)
    assert fresh.previous_key_valid_until is None
    assert (await world.fetch(dep)).key == fresh.key
    assert await world.status(first.key) is KeyStatus.REVOKED


async def test_revoke_after_delete_is_harmless(world: World) -> None:
    dep = await world.deploy("app-revoked-twice")
    await world.fetch(dep)
    await world.delete(dep)
    response = await world.post(dep, "revoke")
    assert response.status_code == 200 and response.json()["revoked_key_ids"] == []
    assert [r["reason"] for r in await admin_audit(world, "admin.deployment.revoke")] == ["keys were already revoked"]


async def test_concurrent_exchanges_never_lose_the_admin_rotation(world: World) -> None:
    dep = await world.deploy("app-race")
    await world.fetch(dep)
    results = await asyncio.gather(
        world.post(dep, "rotate"), *(world.fetch(dep, force_rotate=i % 2 == 0) for i in range(8))
    )
    assert cast(httpx.Response, results[0]).status_code == 200
    record = await world.store.get(dep)
    assert record is not None and record.current_key_hash is not None
    current = await world.fetch(dep)
    assert hash_key(current.key) == record.current_key_hash
    owned = await world.keys.list_for_owner(deployment_id=dep)
    stuck = [r.key_id for r in owned if r.status is KeyStatus.ACTIVE and r.key_id != current.key_id]
    assert stuck == [] and len(owned) == record.generation


async def test_concurrent_exchanges_never_undo_a_revocation(world: World) -> None:
    dep = await world.deploy("app-race-revoke")
    leaked = await world.fetch(dep)
    results = await asyncio.gather(world.post(dep, "revoke"), *(world.fetch(dep) for _ in range(8)))
    assert cast(httpx.Response, results[0]).status_code == 200
    assert await world.status(leaked.key) is KeyStatus.REVOKED
    after = await world.fetch(dep)
    assert after.key != leaked.key and await world.usable(after.key)


BAD_REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/api/admin/deployments?state=succ%20eeded", {}),
    ("GET", "/api/admin/deployments?state=" + "a" * 40, {}),
    ("GET", "/api/admin/deployments?state=", {}),
    ("GET", "/api/admin/deployments?plan=bad%20plan!", {}),
    ("GET", "/api/admin/deployments?plan=" + "p" * 101, {}),
    ("GET", "/api/admin/deployments?state=a&state=b", {}),
    ("GET", "/api/admin/deployments?limit=0", {}),
    ("GET", "/api/admin/deployments?limit=many", {}),
    ("GET", "/api/admin/deployments?application_id=not-an-arm-id", {}),
    ("GET", "/api/admin/deployments?status=succeeded", {}),
    ("GET", "/api/admin/deployments?continuation_token=!!!", {}),
    ("GET", "/api/admin/deployments?continuation_token=W10=", {}),
    ("GET", "/api/admin/deployments?continuation_token=eyJhZnRlciI6ICJ6eiJ9", {}),  # {"after": "zz"}
    ("GET", "/api/admin/deployments?continuation_token=eyJuZXh0IjogIngifQ==", {}),  # {"next": "x"}
    ("GET", "/api/admin/deployments/not-hex", {}),
    ("GET", "/api/admin/deployments/" + "A" * 64, {}),
    ("GET", "/api/admin/deployments/{dep}?x=1", {}),
    ("POST", "/api/admin/deployments/{dep}/rotate", {"json": {"grace_hours": 1}}),
    ("POST", "/api/admin/deployments/{dep}/rotate", {"json": {"reason": 5}}),
    ("POST", "/api/admin/deployments/{dep}/rotate", {"json": {"reason": "x" * 300}}),
    ("POST", "/api/admin/deployments/{dep}/rotate", {"content": b"{nope", "headers": {"content-type": "text/json"}}),
    ("POST", "/api/admin/deployments/{dep}/revoke", {"json": {"reason": "ok", "keys": "all"}}),
    ("POST", "/api/admin/deployments/{dep}/revoke", {"json": ["reason"]}),
    ("POST", "/api/admin/deployments/not-hex/revoke", {}),
    ("POST", "/api/admin/deployments/{dep}/suspend", {"json": {"reason": "unpaid", "until": "2027-01-01"}}),
    ("POST", "/api/admin/deployments/{dep}/suspend", {"json": {"reason": 7}}),
    ("POST", "/api/admin/deployments/{dep}/resume", {"json": {"reason": "x\u0000y"}}),
    ("POST", "/api/admin/deployments/not-hex/suspend", {}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), BAD_REQUESTS)
async def test_bad_input_is_400_and_changes_nothing(
    world: World, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    dep = await world.deploy("app-bad-input")
    await world.fetch(dep)
    before = await snapshot(world.tables)
    headers = {**H, **kwargs.pop("headers", {})}
    assert_invalid_request(await world.client.request(method, path.format(dep=dep), headers=headers, **kwargs))
    assert await snapshot(world.tables) == before


async def test_unknown_deployment_is_404(world: World) -> None:
    missing = deployment_id_for(application_id("nobody"))
    before = await snapshot(world.tables)
    for method, suffix in (("GET", ""), ("POST", "/rotate"), ("POST", "/revoke"), ("POST", "/suspend"),
                           ("POST", "/resume")):
        response = await world.client.request(method, f"/api/admin/deployments/{missing}{suffix}", headers=H)
        assert response.status_code == 404, (suffix, response.text)
        assert response.json()["error"]["param"] == "deployment_id"
    assert await snapshot(world.tables) == before


async def test_every_deployment_route_refuses_bad_credentials(world: World) -> None:
    dep = await world.deploy("app-auth")
    await world.fetch(dep)
    before = await snapshot(world.tables)
    routes = [("GET", "/api/admin/deployments"), ("GET", f"/api/admin/deployments/{dep}"),
              ("POST", f"/api/admin/deployments/{dep}/rotate"), ("POST", f"/api/admin/deployments/{dep}/revoke"),
              ("POST", f"/api/admin/deployments/{dep}/suspend"), ("POST", f"/api/admin/deployments/{dep}/resume")]
    for label, (headers, status) in BAD_CREDENTIALS.items():
        for method, path in routes:
            response = await world.client.request(method, path, headers=headers)
            assert response.status_code == status, (label, method, path, response.text)
            assert response.json()["error"]["type"] in ("authentication_error", "permission_error")
            assert dep not in response.text
    assert await snapshot(world.tables) == before


async def test_unwired_deployments_answer_503_after_authentication(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/admin/deployments")).status_code == 401
    response = await client.get("/api/admin/deployments", headers=H)
    assert response.status_code == 503 and response.json()["error"]["code"] == "admin_not_configured"


async def test_wiring_gives_the_admin_service_its_deployments(
    tables: Tables, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(admin_tenant_id=TENANT, admin_app_id_uri="api://liutong-admin")
    parts = {
        "keys": KeyRepository(tables), "audit": AuditLog(tables), "plans": PlanCatalog.load(settings.plans_file),
        "deployments": DeploymentStore(tables), "masters": SettingMasterSecret("m" * 40),
    }
    async with httpx.AsyncClient() as http:
        service = wiring.build_admin(settings, tables=tables, http=http, parts=parts)
    assert isinstance(service, AdminService) and isinstance(service.deployments, AdminDeployments)


async def test_a_sparse_state_filter_pages_by_bounded_scans(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("admin.deployments.SCAN_LIMIT", 2)
    made = [await world.deploy(f"sparse-{i}", "Failed" if i in (1, 5) else "Succeeded") for i in range(7)]
    failed = {made[1], made[5]}
    seen: list[str] = []
    token: str | None = None
    for _ in range(10):
        query: dict[str, Any] = {"state": "failed", "limit": 5, **({"continuation_token": token} if token else {})}
        body = (await world.client.get("/api/admin/deployments", params=query, headers=H)).json()
        seen += [d["deployment_id"] for d in body["data"]]
        token = body["continuation_token"]
        if token is None:
            break
    assert sorted(seen) == sorted(failed)
