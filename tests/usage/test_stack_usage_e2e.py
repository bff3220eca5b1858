"""Proxied calls through the unmodified openai SDK are counted exactly by the admin usage report, which reads
only the usage aggregates (the whole stack: Azurite, the Entra stand-in, the service under uvicorn)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import openai
import pytest

from localdev.stack import LocalStack

pytestmark = pytest.mark.e2e


async def report_totals(operator: httpx.AsyncClient, team: str, start: datetime, want: int) -> dict[str, int]:
    params = {"team": team, "group_by": "team,model", "granularity": "hour", "from": start.isoformat(),
              "to": (datetime.now(UTC) + timedelta(minutes=1)).isoformat()}
    for _ in range(100):  # the writer commits within its flush interval
        response = await operator.get("/usage", params=params)
        assert response.status_code == 200, response.text
        totals: dict[str, int] = response.json()["totals"]
        if totals["requests"] >= want:
            return totals
        await asyncio.sleep(0.05)
    raise AssertionError(f"the report still counts {totals['requests']} of {want} requests")


async def test_usage_report_counts_sdk_calls_exactly(stack: LocalStack, admin: httpx.AsyncClient) -> None:
    start = datetime.now(UTC)
    team = f"e2e-usage-{uuid.uuid4().hex[:8]}"
    assert (await admin.post("/teams", json={"team": team, "plan_id": "starter"})).status_code == 201
    key = (await admin.post(f"/teams/{team}/keys", json={"description": "usage e2e"})).json()["key"]
    api = openai.AsyncOpenAI(base_url=f"{stack.service_url}/v1", api_key=key, max_retries=0)
    messages = [{"role": "user", "content": "Count me."}]
    prompt = completion = total = 0
    for _ in range(5):
        answer = await api.chat.completions.create(model="gpt-4o-mini", messages=messages)
        assert answer.usage is not None
        prompt, completion, total = (prompt + answer.usage.prompt_tokens,
                                     completion + answer.usage.completion_tokens, total + answer.usage.total_tokens)
    for _ in range(3):
        chunks = [c async for c in await api.chat.completions.create(
            model="gpt-4o-mini", messages=messages, stream=True, stream_options={"include_usage": True})]
        usage = chunks[-1].usage
        assert usage is not None
        prompt, completion, total = (prompt + usage.prompt_tokens, completion + usage.completion_tokens,
                                     total + usage.total_tokens)
    vectors = await api.embeddings.create(model="text-embedding-3-small", input=["one", "two"])
    assert vectors.usage is not None
    prompt, total = prompt + vectors.usage.prompt_tokens, total + vectors.usage.total_tokens

    totals = await report_totals(admin, team, start, 9)
    assert totals["requests"] == 9 and totals["errors"] == 0 and totals["estimated_requests"] == 0
    assert (totals["prompt_tokens"], totals["completion_tokens"], totals["total_tokens"]) == (prompt, completion, total)
