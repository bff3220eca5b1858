"""Team CRUD, suspend/resume, pagination and bad input against real Azurite."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from core.tables import Tables
from keystore.teams import TeamStore
from provisioning.audit import AuditLog
from tests.admin.conftest import Clock, assert_invalid_request, auth_header, create_team, snapshot
from tests.provisioning.tokens import OID, TENANT

H = auth_header()


async def test_create_show_update(client: httpx.AsyncClient, tables: Tables, clock: Clock) -> None:
    created = await create_team(client, "team-a", "standard")
    assert created == {
        "object": "team", "team": "team-a", "plan_id": "standard", "status": "active",
        "description": "first", "created_at": clock.now.isoformat(),
    }
    shown = await client.get("/api/admin/teams/team-a", headers=H)
    assert shown.json() == {**created, "limits": None}
    patched = await client.patch("/api/admin/teams/team-a", json={"description": "renamed"}, headers=H)
    assert patched.status_code == 200 and patched.json()["description"] == "renamed"
    # The proxy's own TeamStore reads the same row.
    stored = await TeamStore(tables).get("team-a")
    assert stored is not None and stored.plan_id == "standard" and stored.description == "renamed"
    events = await AuditLog(tables).list_day(clock.now)
    assert sorted(e["action"] for e in events) == ["admin.team.create", "admin.team.update"]
    assert all(e["actor_oid"] == OID and e["actor_tid"] == TENANT for e in events)


async def test_duplicate_and_missing(client: httpx.AsyncClient) -> None:
    await create_team(client)
    again = await client.post("/api/admin/teams", json={"team": "team-a", "plan_id": "starter"}, headers=H)
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    for method, path in [("GET", "/api/admin/teams/nope"), ("POST", "/api/admin/teams/nope/suspend"),
                         ("GET", "/api/admin/teams/nope/keys")]:
        response = await client.request(method, path, headers=H)
        assert response.status_code == 404, path
    missing = await client.patch("/api/admin/teams/nope", json={"description": "x"}, headers=H)
    assert missing.status_code == 404


async def test_suspend_resume(client: httpx.AsyncClient, tables: Tables, clock: Clock) -> None:
    await create_team(client)
    suspended = await client.post("/api/admin/teams/team-a/suspend", headers=H)
    assert suspended.json()["status"] == "suspended"
    stored = await TeamStore(tables).get("team-a")
    assert stored is not None and stored.suspended
    refused = await client.post("/api/admin/teams/team-a/keys", json={}, headers=H)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "team_suspended"
    resumed = await client.post("/api/admin/teams/team-a/resume", headers=H)
    assert resumed.json()["status"] == "active"
    stored = await TeamStore(tables).get("team-a")
    assert stored is not None and not stored.suspended
    actions = sorted(e["action"] for e in await AuditLog(tables).list_day(clock.now))
    assert actions == ["admin.team.create", "admin.team.resume", "admin.team.suspend"]


async def test_pagination_returns_every_team(client: httpx.AsyncClient) -> None:
    names = {f"team-{i:02d}" for i in range(7)}
    for name in names:
        await create_team(client, name)
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if token:
            params["continuation_token"] = token
        body = (await client.get("/api/admin/teams", params=params, headers=H)).json()
        assert len(body["data"]) <= 3
        seen += [t["team"] for t in body["data"]]
        pages += 1
        token = body["continuation_token"]
        assert body["has_more"] == (token is not None)
        if token is None:
            break
    assert sorted(seen) == sorted(names) and pages >= 3


@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "x"}, {"limit": "1000"},
                                    {"continuation_token": "!!!"}, {"continuation_token": "W10="},
                                    {"continuation_token": "bm90IGpzb24="}])
async def test_bad_listing_parameters(client: httpx.AsyncClient, params: dict[str, str]) -> None:
    assert_invalid_request(await client.get("/api/admin/teams", params=params, headers=H))


BAD_CREATES: list[tuple[Any, int]] = [
    (b"{not json", 400),
    (b"[1, 2]", 400),
    (b"", 400),
    ({"team": 5, "plan_id": "starter"}, 400),
    ({"team": "Team-A", "plan_id": "starter"}, 400),
    ({"team": "a", "plan_id": "starter"}, 400),
    ({"team": "-abc", "plan_id": "starter"}, 400),
    ({"team": "team/../x", "plan_id": "starter"}, 400),
    ({"team": "t" * 64, "plan_id": "starter"}, 400),
    ({"team": "team-b", "plan_id": "no-such-plan"}, 400),
    ({"team": "team-b", "plan_id": ["starter"]}, 400),
    ({"team": "team-b"}, 400),
    ({"team": "team-b", "plan_id": "starter", "description": 7}, 400),
    ({"team": "team-b", "plan_id": "starter", "description": "x" * 300}, 400),
    ({"team": "team-b", "plan_id": "starter", "description": "bad\x00"}, 400),
    ({"team": "team-b", "plan_id": "starter", "status": "suspended"}, 400),
    ({"team": "team-b", "plan_id": "starter", "description": "x" * 5000}, 413),
]


@pytest.mark.parametrize(("body", "status"), BAD_CREATES)
async def test_bad_create_writes_nothing(client: httpx.AsyncClient, tables: Tables, body: Any, status: int) -> None:
    before = await snapshot(tables)
    if isinstance(body, bytes):
        response = await client.post(
            "/api/admin/teams", content=body, headers={**H, "content-type": "application/json"}
        )
    else:
        response = await client.post("/api/admin/teams", json=body, headers=H)
    assert_invalid_request(response, status=status)
    assert await snapshot(tables) == before


async def test_bad_update_and_media_type(client: httpx.AsyncClient, tables: Tables) -> None:
    await create_team(client)
    before = await snapshot(tables)
    for body in ({}, {"description": None}, {"description": 1}, {"plan_id": "no-such-plan"}, {"plan_id": 3},
                 {"description": "ok", "plan_id": "no-such-plan"}, {"team": "team-b"}):
        response = await client.patch("/api/admin/teams/team-a", json=body, headers=H)
        assert response.status_code == 400, body
    xml = await client.post("/api/admin/teams", content=b"<a/>", headers={**H, "content-type": "text/xml"})
    assert xml.status_code == 415
    bad_name = await client.get("/api/admin/teams/BAD_NAME", headers=H)
    assert bad_name.status_code == 400
    assert await snapshot(tables) == before


async def test_update_moves_a_team_to_another_plan(client: httpx.AsyncClient, tables: Tables) -> None:
    await create_team(client, plan_id="starter")
    response = await client.patch("/api/admin/teams/team-a", json={"plan_id": "standard"}, headers=H)
    assert response.status_code == 200, response.text
    assert response.json()["plan_id"] == "standard" and response.json()["description"] == "first"
    stored = await TeamStore(tables).get("team-a")
    assert stored is not None and stored.plan_id == "standard"
