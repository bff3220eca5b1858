"""Selling prepaid credit through the whole local stack: the admin API tops up, the openai SDK spends it.

Top up → calls draw the earliest-expiring lot → a pack is used only by its model → the lot expires (a short real
expiry) and the ledger shows what it took away → an empty balance is 429 insufficient_quota, not retried.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import openai
import pytest

from localdev.stack import LocalStack

pytestmark = pytest.mark.e2e
MESSAGES: Any = [{"role": "user", "content": "hello"}]


async def lots(admin: httpx.AsyncClient, team: str) -> dict[str | None, int]:
    shown = (await admin.get(f"/teams/{team}/credits")).json()
    return {lot["reference"]: lot["left"] for lot in shown["lots"]}


async def test_credit_is_sold_spent_expires_and_runs_out(stack: LocalStack, admin: httpx.AsyncClient) -> None:
    team = f"cr-{uuid.uuid4().hex[:8]}"
    assert (await admin.post("/teams", json={"team": team, "plan_id": "prepaid"})).status_code == 201
    key = (await admin.post(f"/teams/{team}/keys", json={"description": "credit e2e"})).json()["key"]
    soon = (datetime.now(UTC) + timedelta(seconds=4)).isoformat()
    for ref, body in (("late", {}), ("soon", {"expires_at": soon}), ("pack", {"model": "gpt-4o"})):
        added = await admin.post(f"/teams/{team}/credits", json={"tokens": 50_000, "reference": ref, **body},
                                 headers={"idempotency-key": f"{team}-{ref}"})
        assert added.status_code == 201, added.text
    retried = await admin.post(f"/teams/{team}/credits", json={"tokens": 50_000, "reference": "late"},
                               headers={"idempotency-key": f"{team}-late"})
    assert retried.json()["duplicate"] and retried.json()["available"] == 150_000

    api = openai.AsyncOpenAI(base_url=f"{stack.service_url}/v1", api_key=key, max_retries=2)
    async with api:
        raw = await api.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
        assert 0 < int(raw.headers["x-liutong-balance-remaining"]) < 150_000
        left = await lots(admin, team)
        assert left["late"] == left["pack"] == 50_000 and left["soon"] < 50_000  # the earliest expiry first
        await api.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        left = await lots(admin, team)
        assert left["late"] == 50_000 and left["pack"] < 50_000  # gpt-4o's pack first

        await asyncio.sleep(max(0.0, (datetime.fromisoformat(soon) - datetime.now(UTC)).total_seconds()) + 0.5)
        await api.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # folds the expired lot away
        ledger = (await admin.get(f"/teams/{team}/credits/ledger")).json()["data"]
        expiries = [row for row in ledger if row["kind"] == "expiry"]
        assert len(expiries) == 1 and expiries[0]["reference"] == "soon" and expiries[0]["tokens"] < 0
        assert "soon" not in await lots(admin, team)

        available = (await admin.get(f"/teams/{team}/credits")).json()["available"]
        taken = await admin.post(f"/teams/{team}/credits/adjust", json={"tokens": -available, "reason": "e2e"})
        assert taken.status_code == 200, taken.text
        with pytest.raises(openai.RateLimitError) as refused:
            await api.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert refused.value.code == "insufficient_quota"
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert "empty" in refused.value.message
    kinds = [row["kind"] for row in (await admin.get(f"/teams/{team}/credits/ledger")).json()["data"]]
    assert kinds.count("top_up") == 3 and "adjustment" in kinds
