"""A limit override through the whole local stack: it throttles the one deployment it names, within the
principal cache TTL, and clearing it lifts the throttle."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import openai
import pytest

from localdev.stack import LocalStack
from provisioning.notifications import deployment_id_for
from tests.provisioning.service import app_token
from tests.provisioning.test_exchange_http import deploy
from tests.provisioning.test_rotation_stack import TTL_SECONDS, current

pytestmark = pytest.mark.e2e
MESSAGES = [{"role": "user", "content": "hello"}]




async def statuses(stack: LocalStack, key: str, calls: int, model: str = "gpt-4o-mini") -> Counter[int | str]:
    seen: Counter[int | str] = Counter()
    async with openai.AsyncOpenAI(base_url=f"{stack.service_url}/v1", api_key=key, max_retries=0) as api:
        for _ in range(calls):
            try:
                await api.chat.completions.create(model=model, messages=MESSAGES)  # type: ignore[arg-type]
                seen[200] += 1
            except openai.APIStatusError as error:
                seen[f"{error.status_code} {error.code}"] += 1
    return seen


async def customer(stack: LocalStack, service_http: httpx.AsyncClient) -> tuple[str, str]:
    app_id = await deploy(stack, service_http)
    return deployment_id_for(app_id), (await current(service_http, await app_token(app_id), app_id))["key"]


async def test_an_override_throttles_only_its_deployment_until_cleared(
    stack: LocalStack, service_http: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    throttled, throttled_key = await customer(stack, service_http)
    _, other_key = await customer(stack, service_http)
    response = await admin.put(f"/deployments/{throttled}/limits",
                               json={"rpm": 2, "models": ["gpt-4o-mini"], "reason": "runaway client"})
    assert response.status_code == 200, response.text
    await asyncio.sleep(TTL_SECONDS + 0.2)  # the principal (and its override) is re-read after the TTL

    limited = await statuses(stack, throttled_key, 6)
    assert limited[200] >= 1 and limited["429 rate_limit_exceeded"] >= 1, limited
    assert await statuses(stack, throttled_key, 1, model="gpt-4o") == {"403 model_not_found": 1}
    assert await statuses(stack, other_key, 6) == {200: 6}
    assert await statuses(stack, other_key, 1, model="gpt-4o") == {200: 1}  # its plan still allows it

    assert (await admin.delete(f"/deployments/{throttled}/limits")).status_code == 200
    await asyncio.sleep(TTL_SECONDS + 0.2)
    # The key's buckets keep their (empty) level and refill at the plan's rate from now on: poll, briefly.
    for _ in range(50):
        if await statuses(stack, throttled_key, 1, model="gpt-4o") == {200: 1}:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("clearing the override did not lift the throttle")
