"""`make demo`'s prepaid credit and BYOK steps: what an operator sells, and what the customer's calls then do.

Through the admin API, signed in as the stack's automation app (client credentials at the Entra stand-in).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import httpx
import openai

from localdev.stack import ADMIN_APP_ID_URI, ADMIN_AUTOMATION_CLIENT_ID, LocalStack

TEAM = "demo-prepaid"
OWN_KEY = "sk-demo-team-own-provider-key-7Q2x"  # the team's "own" key for the mock provider (it takes any key)


@contextlib.asynccontextmanager
async def operator_api(stack: LocalStack) -> AsyncIterator[httpx.AsyncClient]:
    assert stack.standin is not None
    tenant = stack.settings().admin_tenant_id
    async with httpx.AsyncClient(timeout=30) as http:
        grant = await http.post(f"{stack.standin.base_url}/{tenant}/oauth2/v2.0/token", data={
            "grant_type": "client_credentials", "client_id": ADMIN_AUTOMATION_CLIENT_ID,
            "client_secret": stack.admin_automation_secret, "scope": f"{ADMIN_APP_ID_URI}/.default",
        })
        grant.raise_for_status()
        headers = {"authorization": f"Bearer {grant.json()['access_token']}"}
        async with httpx.AsyncClient(base_url=f"{stack.service_url}/api/admin", headers=headers, timeout=60) as api:
            yield api


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


async def _chat(stack: LocalStack, key: str) -> dict[str, str]:
    """The answer's headers (the call raises on anything but a 2xx)."""
    api = openai.AsyncOpenAI(base_url=f"{stack.service_url}/v1", api_key=key, max_retries=0)
    raw = await api.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello from the credit demo"}])
    return dict(raw.headers)


async def top_up(stack: LocalStack) -> tuple[str, str]:
    """A team on the prepaid plan: refused while empty, topped up twice with one Idempotency-Key, then served."""
    async with operator_api(stack) as admin:
        created = await admin.post("/teams", json={"team": TEAM, "plan_id": "prepaid"})
        _check(created.status_code in (201, 409), f"team: {created.status_code} {created.text[:200]}")
        key = (await admin.post(f"/teams/{TEAM}/keys", json={"description": "credit demo"})).json()["key"]
        try:
            await _chat(stack, key)
            raise AssertionError("an empty balance served a call")
        except openai.RateLimitError as refused:
            _check(refused.response.headers.get("x-should-retry") == "false", "429 without x-should-retry: false")
        once = {"Idempotency-Key": str(uuid.uuid4())}
        body = {"tokens": 50_000, "reference": "INV-DEMO-1"}
        for _ in range(2):  # a retried top-up: credited once
            sent = await admin.post(f"/teams/{TEAM}/credits", json=body, headers=once)
            _check(sent.status_code in (200, 201), f"top-up: {sent.status_code} {sent.text[:200]}")
        shown = (await admin.get(f"/teams/{TEAM}/credits")).json()
    left = (await _chat(stack, key)).get("x-liutong-balance-remaining", "?")
    _check(shown.get("available") == 50_000, f"two sends of one top-up gave {shown.get('available')}")
    return key, f"429 while empty; top-up sent twice, credited once (50,000); a call leaves {left}"


async def byok_call(stack: LocalStack, key: str) -> str:
    """The team registers its own provider key: its call reaches the provider with that key and costs no credit."""
    async with operator_api(stack) as admin:
        registered = await admin.put(f"/teams/{TEAM}/byok/gpt-4o-mini", json={"api_key": OWN_KEY})
        _check(registered.status_code in (200, 201), f"byok: {registered.status_code} {registered.text[:200]}")
        before = (await admin.get(f"/teams/{TEAM}/credits")).json()["available"]
        await _chat(stack, key)
        after = (await admin.get(f"/teams/{TEAM}/credits")).json()["available"]
        await admin.delete(f"/teams/{TEAM}/byok/gpt-4o-mini")
    assert stack.upstream is not None
    sent = stack.upstream.received[-1].headers.get("authorization")
    _check(sent == f"Bearer {OWN_KEY}", "the call did not carry the team's own key")
    _check(before == after, f"a BYOK call changed the balance from {before} to {after}")
    return f"the provider saw the team's key (…{OWN_KEY[-4:]}); balance unchanged at {after}"
