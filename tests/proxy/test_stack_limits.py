"""Plan limits through the whole stack with the openai SDK: model not in plan, RPM, prepaid balance."""

import math
import time
import uuid
from datetime import UTC, datetime

import httpx
import openai
import pytest

from core.tables import Tables
from keystore import keys
from keystore.models import KeyRecord, KeyStatus
from keystore.repository import KeyRepository
from keystore.teams import Team, TeamStore
from localdev.stack import LocalStack

pytestmark = pytest.mark.e2e
MESSAGES = [{"role": "user", "content": "hi"}]


async def team_key(stack: LocalStack, plan_id: str) -> str:
    """A team on `plan_id` and an operator-minted key for it, written with the real repositories."""
    team = f"team{uuid.uuid4().hex[:10]}"
    key = keys.generate_key()
    tables = Tables(stack.settings())
    try:
        await TeamStore(tables).put(Team(team=team, plan_id=plan_id))
        await KeyRepository(tables).insert(KeyRecord(
            key_hash=keys.hash_key(key), key_id=keys.random_key_id(), prefix=keys.display_prefix(key), team=team,
            description="limits test", status=KeyStatus.ACTIVE, created_at=datetime.now(UTC),
        ))
    finally:
        await tables.close()
    return key


async def post_chat(stack: LocalStack, key: str, model: str = "gpt-4o-mini") -> httpx.Response:
    async with httpx.AsyncClient(base_url=stack.service_url, timeout=30) as http:
        return await http.post(
            "/v1/chat/completions", json={"model": model, "messages": MESSAGES},
            headers={"authorization": f"Bearer {key}"},
        )


async def test_model_outside_the_plan_is_refused(stack: LocalStack) -> None:
    key = await team_key(stack, "starter")
    response = await post_chat(stack, key, model="gpt-4o")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "model_not_found"


async def test_rpm_limit_answers_429_with_openai_headers(stack: LocalStack) -> None:
    key = await team_key(stack, "starter")  # 60 requests per minute
    first = await post_chat(stack, key)
    assert first.status_code == 200, first.text
    assert first.headers["x-ratelimit-limit-requests"] == "60"
    assert first.headers["x-ratelimit-remaining-requests"] == "59"
    assert "x-ratelimit-reset-requests" in first.headers and "x-ratelimit-limit-tokens" in first.headers
    # The bucket refills continuously (1 request a second here), so count what passed until the refusal.
    started, passed = time.monotonic(), 1
    refused = await post_chat(stack, key)
    while refused.status_code == 200 and passed < 200:
        passed += 1
        refused = await post_chat(stack, key)
    assert refused.status_code == 429
    assert 60 <= passed <= 60 + math.ceil(time.monotonic() - started) + 1
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(refused.headers["retry-after-ms"]) > 0 and int(refused.headers["retry-after"]) >= 1


async def test_empty_prepaid_balance_is_insufficient_quota_and_the_sdk_does_not_retry(stack: LocalStack) -> None:
    key = await team_key(stack, "prepaid")
    api = openai.AsyncOpenAI(base_url=f"{stack.service_url}/v1", api_key=key, max_retries=2)
    received = len(stack.upstream.received) if stack.upstream else 0
    with pytest.raises(openai.RateLimitError) as refused:
        await api.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert refused.value.code == "insufficient_quota"
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert stack.upstream is None or len(stack.upstream.received) == received
