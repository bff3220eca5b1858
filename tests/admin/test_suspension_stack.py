"""Suspending a customer through the whole local stack: the managed app's openai SDK calls get 403
account_suspended within the principal cache TTL, its key exchange mints nothing, and resume restores its key."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from localdev.stack import LocalStack
from provisioning.notifications import deployment_id_for
from tests.provisioning.service import app_token
from tests.provisioning.test_exchange_http import deploy
from tests.provisioning.test_rotation_stack import current, key_rows, post

pytestmark = pytest.mark.e2e




async def models_status(stack: LocalStack, key: str) -> tuple[int, str | None]:
    async with openai.AsyncOpenAI(base_url=f"{stack.service_url}/v1", api_key=key, max_retries=0) as api:
        try:
            await api.models.list()
        except openai.APIStatusError as error:
            return error.status_code, error.code
    return 200, None


async def eventually(stack: LocalStack, key: str, expected: tuple[int, str | None]) -> None:
    """Within the principal cache TTL (1 s in the test stack): poll, never sleep a fixed time."""
    seen = None
    for _ in range(100):
        seen = await models_status(stack, key)
        if seen == expected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {expected}, still {seen}")


async def test_suspend_and_resume_reach_the_proxy_and_the_key_exchange(
    stack: LocalStack, service_http: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    app_id = await deploy(stack, service_http)
    token = await app_token(app_id)
    key = (await current(service_http, token, app_id))["key"]
    other_app = await deploy(stack, service_http)
    other_key = (await current(service_http, await app_token(other_app), other_app))["key"]
    dep = deployment_id_for(app_id)

    suspended = await admin.post(f"/deployments/{dep}/suspend", json={"reason": "payment overdue"})
    assert suspended.status_code == 200, suspended.text
    await eventually(stack, key, (403, "account_suspended"))
    assert await models_status(stack, other_key) == (200, None)  # only this customer

    rows_before, _ = await key_rows(stack, app_id)
    for path in ("key", "key/rotate"):
        refused = await post(service_http, token, path, {"application_id": app_id})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "account_suspended"
        assert "publisher" in refused.json()["error"]["message"]
    rows_after, audit = await key_rows(stack, app_id)
    assert rows_after == rows_before
    assert any(a["action"] == "admin.deployment.suspend" and a["reason"] == "payment overdue" for a in audit)

    assert (await admin.post(f"/deployments/{dep}/resume")).status_code == 200
    await eventually(stack, key, (200, None))
    assert (await current(service_http, token, app_id))["key"] == key
