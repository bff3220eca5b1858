"""Operators through the whole local stack: an automation app signs in with client credentials at the
Entra stand-in, then runs a team's lifecycle through the admin API while the openai SDK uses its key."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import openai
import pytest

from localdev.stack import LocalStack

pytestmark = pytest.mark.e2e

MESSAGES = [{"role": "user", "content": "hello"}]



async def chat_status(stack: LocalStack, key: str) -> int:
    client = openai.AsyncOpenAI(base_url=f"{stack.service_url}/v1", api_key=key, max_retries=0)
    async with client:
        try:
            await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
        except openai.APIStatusError as error:
            return error.status_code
    return 200


async def eventually(stack: LocalStack, key: str, status: int) -> None:
    """Within the principal cache's TTL (1 s in the test stack): poll, never sleep a fixed time."""
    seen = None
    for _ in range(100):
        seen = await chat_status(stack, key)
        if seen == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {status}, still {seen}")


async def test_team_lifecycle_reaches_the_proxy(stack: LocalStack, admin: httpx.AsyncClient) -> None:
    team = f"e2e-{uuid.uuid4().hex[:8]}"
    assert (await admin.post("/teams", json={"team": team, "plan_id": "starter"})).status_code == 201
    minted = await admin.post(f"/teams/{team}/keys", json={"description": "e2e"})
    assert minted.status_code == 201, minted.text
    key, key_id = minted.json()["key"], minted.json()["key_id"]
    assert await chat_status(stack, key) == 200  # works at once

    assert (await admin.post(f"/teams/{team}/suspend")).status_code == 200
    await eventually(stack, key, 403)
    assert (await admin.post(f"/teams/{team}/resume")).status_code == 200
    await eventually(stack, key, 200)

    now = datetime.now(UTC)
    report = await admin.get("/usage", params={
        "team": team, "group_by": "team", "granularity": "hour",
        "from": (now - timedelta(hours=1)).isoformat(), "to": (now + timedelta(minutes=5)).isoformat(),
    })
    assert report.status_code == 200, report.text
    totals = report.json()["totals"]
    assert totals["requests"] >= 2 and totals["total_tokens"] > 0  # refusals before admission are not usage
    listed = (await admin.get(f"/teams/{team}/keys")).json()["data"]
    assert [k["key_id"] for k in listed] == [key_id] and "key" not in listed[0]

    assert (await admin.post(f"/teams/{team}/keys/{key_id}/revoke")).status_code == 200
    await eventually(stack, key, 401)
    audit = await admin.get("/audit", params={"action": "admin.", "resource_id": f"team/{team}"})
    actions = {row["action"] for row in audit.json()["data"]}
    assert {"admin.team.create", "admin.key.mint", "admin.team.suspend", "admin.key.revoke"} <= actions
