"""Refused calls through the whole local stack: a wrong key (401), a model the plan lacks (403) and a rate limit
(429) are counted per hour and owner and shown in the admin usage report; never the key itself."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import openai
import pytest

from localdev.stack import LocalStack
from tests.provisioning.service import table_rows

pytestmark = pytest.mark.e2e
MESSAGES = [{"role": "user", "content": "hello"}]



async def refused(stack: LocalStack, key: str, model: str) -> int:
    async with openai.AsyncOpenAI(base_url=f"{stack.service_url}/v1", api_key=key, max_retries=0) as api:
        try:
            await api.chat.completions.create(model=model, messages=MESSAGES)  # type: ignore[arg-type]
        except openai.APIStatusError as error:
            return error.status_code
    return 200


async def report_refusals(admin: httpx.AsyncClient, team: str, expected: int) -> dict[str, Any]:
    """The counters are written every few seconds: poll the report until they show."""
    now = datetime.now(UTC)
    params = {"team": team, "from": (now - timedelta(hours=1)).isoformat(),
              "to": (now + timedelta(hours=1)).isoformat()}
    body: dict[str, Any] = {}
    for _ in range(150):
        response = await admin.get("/usage", params=params)
        assert response.status_code == 200, response.text
        body = response.json()["refused"]
        if body["total"] >= expected:
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"refusals never reached {expected}: {body}")


async def test_refused_calls_are_counted_per_owner_and_reported(stack: LocalStack, admin: httpx.AsyncClient) -> None:
    team = f"ref-{uuid.uuid4().hex[:8]}"
    assert (await admin.post("/teams", json={"team": team, "plan_id": "starter"})).status_code == 201
    minted = (await admin.post(f"/teams/{team}/keys", json={})).json()
    assert (await admin.put(f"/teams/{team}/limits", json={"rpm": 1})).status_code == 200
    await asyncio.sleep(1.2)  # the principal cache TTL of the test stack: the override applies
    wrong_key = "lt-" + "Z" * 43

    assert await refused(stack, minted["key"], "gpt-4o") == 403  # not in the starter plan
    statuses = [await refused(stack, minted["key"], "gpt-4o-mini") for _ in range(3)]
    assert statuses[0] == 200 and 429 in statuses
    assert await refused(stack, wrong_key, "gpt-4o-mini") == 401

    body = await report_refusals(admin, team, 1 + statuses.count(429))
    by_code = {(row["status"], row["code"]): row for row in body["data"]}
    assert by_code[(403, "model_not_found")]["count"] == 1
    assert by_code[(429, "rate_limit_exceeded")]["count"] == statuses.count(429)
    assert {row["owner"] for row in body["data"]} == {f"team-{team}"}  # the report's team filter
    assert {row["key"] for row in body["data"]} == {minted["key_id"]}

    stored = json.dumps(await table_rows(stack, "refusals"), default=str)
    assert minted["key"] not in stored and wrong_key not in stored and wrong_key[:12] not in stored
    assert '"key": "p-' in stored and '"status": 401' in stored  # the wrong key: a hash of its prefix only
