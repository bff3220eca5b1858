"""Limit overrides through the admin API: set, show, replace, clear, audit; bad input changes nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from admin.service import AdminService
from core.tables import Tables
from tests.admin.conftest import Clock, assert_invalid_request, create_team, snapshot
from tests.admin.deployment_world import H, World, admin_audit, make_world


@pytest.fixture
def world(client: httpx.AsyncClient, admin_service: AdminService, tables: Tables, clock: Clock) -> World:
    return make_world(client, admin_service, tables, clock)


async def put(world: World, path: str, body: dict[str, Any]) -> httpx.Response:
    return await world.client.put(f"/api/admin/{path}/limits", headers=H, json=body)


async def test_a_deployment_override_is_set_shown_replaced_and_cleared(world: World) -> None:
    dep = await world.deploy("app-throttled")
    expires = (world.clock.now + timedelta(days=2)).isoformat()
    response = await put(world, f"deployments/{dep}", {"rpm": 5, "tpm": 2000, "models": ["gpt-4o-mini"],
                                                        "expires_at": expires, "reason": "runaway loop"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["rpm"], body["tpm"], body["monthly_tokens"], body["models"]) == (5, 2000, None, ["gpt-4o-mini"])
    assert body["active"] is True and body["expires_at"] == expires and body["reason"] == "runaway loop"
    assert body["owner"] == f"dep-{dep}" and body["set_by"]

    shown = (await world.client.get(f"/api/admin/deployments/{dep}", headers=H)).json()
    assert shown["limits"]["rpm"] == 5
    assert (await put(world, f"deployments/{dep}", {"monthly_tokens": 0})).status_code == 200
    shown = (await world.client.get(f"/api/admin/deployments/{dep}", headers=H)).json()
    assert shown["limits"]["rpm"] is None and shown["limits"]["monthly_tokens"] == 0  # replaced, not merged

    cleared = await world.client.request("DELETE", f"/api/admin/deployments/{dep}/limits", headers=H,
                                         json={"reason": "fixed"})
    assert cleared.status_code == 200 and cleared.json()["cleared"] is True
    again = await world.client.delete(f"/api/admin/deployments/{dep}/limits", headers=H)
    assert again.status_code == 200 and again.json()["cleared"] is False
    assert (await world.client.get(f"/api/admin/deployments/{dep}", headers=H)).json()["limits"] is None
    reasons = {r.get("reason") for r in await admin_audit(world, "admin.deployment.limits")}
    assert reasons == {"runaway loop", None}  # both rows carry the test clock's instant: their order is not defined
    assert [r["reason"] for r in await admin_audit(world, "admin.deployment.limits.clear")] == ["fixed"]


async def test_a_team_override_is_shown_on_the_team(world: World) -> None:
    await create_team(world.client, "team-capped")
    response = await put(world, "teams/team-capped", {"monthly_tokens": 1000})
    assert response.status_code == 200, response.text
    team = (await world.client.get("/api/admin/teams/team-capped", headers=H)).json()
    assert team["limits"]["monthly_tokens"] == 1000 and team["limits"]["active"] is True
    rows = await admin_audit(world, "admin.team.limits")
    assert [r["resource_id"] for r in rows] == ["team/team-capped"]


BAD_BODIES: list[tuple[dict[str, Any], str]] = [
    ({"rpm": -1}, "rpm"), ({"rpm": 0}, "rpm"), ({"rpm": 1.5}, "rpm"), ({"rpm": "10"}, "rpm"), ({"rpm": True}, "rpm"),
    ({"tpm": 10**13}, "tpm"), ({"monthly_tokens": -5}, "monthly_tokens"), ({"models": []}, "models"),
    ({"models": "gpt-4o"}, "models"), ({"models": ["no-such-model"]}, "models"), ({"models": [1]}, "models"),
    ({"rpm": 5, "expires_at": "2000-01-01T00:00:00+00:00"}, "expires_at"),
    ({"rpm": 5, "expires_at": "tomorrow"}, "expires_at"), ({"rpm": 5, "burst": 2}, "burst"), ({}, "rpm"),
    ({"reason": "nothing to set"}, "rpm"), ({"rpm": 5, "reason": "x" * 300}, "reason"),
]


@pytest.mark.parametrize(("body", "param"), BAD_BODIES)
async def test_bad_overrides_are_400_and_change_nothing(world: World, body: dict[str, Any], param: str) -> None:
    dep = await world.deploy("app-bad-override")
    before = await snapshot(world.tables)
    assert_invalid_request(await put(world, f"deployments/{dep}", body), param=param)
    assert await snapshot(world.tables) == before


async def test_a_prepaid_team_takes_no_monthly_cap(world: World) -> None:
    await create_team(world.client, "team-prepaid", plan_id="prepaid")
    assert_invalid_request(await put(world, "teams/team-prepaid", {"monthly_tokens": 10}), param="monthly_tokens")


async def test_unknown_or_deleted_owners_are_404(world: World) -> None:
    dep = await world.deploy("app-deleted-override")
    await world.delete(dep)
    before = await snapshot(world.tables)
    for path in (f"deployments/{dep}", "deployments/" + "0" * 64, "teams/no-such-team"):
        response = await put(world, path, {"rpm": 5})
        assert response.status_code == 404, (path, response.text)
    assert await snapshot(world.tables) == before
