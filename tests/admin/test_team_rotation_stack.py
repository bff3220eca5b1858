"""Team key rotation through the admin API of the whole local stack: a rotation chain never leaves more
than two working keys at the proxy, concurrent rotations of one key hand out one successor, and
revoke_previous leaves one."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest

from localdev.stack import LocalStack
from tests.provisioning.test_rotation_stack import working

pytestmark = pytest.mark.e2e



async def new_team(admin: httpx.AsyncClient) -> tuple[str, dict[str, Any]]:
    team = f"rot-{uuid.uuid4().hex[:8]}"
    assert (await admin.post("/teams", json={"team": team, "plan_id": "starter"})).status_code == 201
    minted = await admin.post(f"/teams/{team}/keys", json={"description": "rotation"})
    assert minted.status_code == 201, minted.text
    return team, dict(minted.json())


async def rotate(admin: httpx.AsyncClient, team: str, key_id: str, **body: Any) -> httpx.Response:
    return await admin.post(f"/teams/{team}/keys/{key_id}/rotate", json=body)


async def keys_and_revocations(admin: httpx.AsyncClient, team: str) -> tuple[list[dict[str, Any]], Counter[str]]:
    keys = (await admin.get(f"/teams/{team}/keys")).json()["data"]
    audit = await admin.get("/audit", params={"resource_id": f"team/{team}", "action": "admin.key.revoke",
                                              "limit": 200})
    assert audit.status_code == 200, audit.text
    return keys, Counter(event["key_id"] for event in audit.json()["data"])


def assert_one_audit_row_per_revocation(keys: list[dict[str, Any]], revocations: Counter[str]) -> None:
    assert revocations == Counter(k["key_id"] for k in keys if k["status"] == "revoked")


async def test_a_rotation_chain_keeps_two_working_keys_and_no_grace_keeps_one(
    stack: LocalStack, admin: httpx.AsyncClient
) -> None:
    team, first = await new_team(admin)
    chain = [first]
    for _ in range(3):
        response = await rotate(admin, team, chain[-1]["key_id"])
        assert response.status_code == 201, response.text
        assert response.json()["previous"]["status"] == "rotating-out"
        chain.append(response.json())
    keys = [k["key"] for k in chain]
    assert await working(stack, set(keys)) == {keys[-2], keys[-1]}

    leaked = await rotate(admin, team, chain[-1]["key_id"], revoke_previous=True)
    assert leaked.status_code == 201, leaked.text
    assert leaked.json()["previous"]["status"] == "revoked"
    assert await working(stack, {*keys, leaked.json()["key"]}) == {leaked.json()["key"]}
    listed, revocations = await keys_and_revocations(admin, team)
    assert [k["key_id"] for k in listed if k["status"] != "revoked"] == [leaked.json()["key_id"]]
    assert_one_audit_row_per_revocation(listed, revocations)


async def test_fifty_concurrent_rotations_of_one_key_hand_out_one_successor(
    stack: LocalStack, admin: httpx.AsyncClient
) -> None:
    team, first = await new_team(admin)
    responses = await asyncio.gather(*(rotate(admin, team, first["key_id"]) for _ in range(50)))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 409: 49}, statuses
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} == {"key_not_active"}
    winner = next(r.json() for r in responses if r.status_code == 201)

    assert await working(stack, {first["key"], winner["key"]}) == {first["key"], winner["key"]}
    listed, revocations = await keys_and_revocations(admin, team)
    assert sorted(k["key_id"] for k in listed if k["status"] != "revoked") == sorted(
        [first["key_id"], winner["key_id"]])
    assert_one_audit_row_per_revocation(listed, revocations)


@pytest.mark.parametrize(("body", "param"), [
    ({"revoke_previous": "true"}, "revoke_previous"),
    ({"revoke_previous": True, "grace_hours": 2}, "grace_hours"),
    ({"no_grace": True}, "no_grace"),
])
async def test_bad_team_rotation_options_are_refused(
    admin: httpx.AsyncClient, body: dict[str, Any], param: str
) -> None:
    team, first = await new_team(admin)
    response = await rotate(admin, team, first["key_id"], **body)
    assert response.status_code == 400 and response.json()["error"]["param"] == param
    listed, _ = await keys_and_revocations(admin, team)
    assert [(k["key_id"], k["status"]) for k in listed] == [(first["key_id"], "active")]
