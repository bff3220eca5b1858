"""GET /v1/usage through the whole local stack: a Marketplace customer's managed app gets its key by key exchange,
calls models with the unmodified openai SDK, and its own usage view then equals the admin report for its
deployment; an operator team's view shows only the team; an admin token is not a Liutong key."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import openai
import pytest

from core.hours import month_start
from localdev.stack import LocalStack
from provisioning.notifications import deployment_id_for
from tests.proxy.test_stack_e2e import marketplace_key, sdk

pytestmark = pytest.mark.e2e

MESSAGES: Any = [{"role": "user", "content": "Count me, please."}]
COUNTER_NAMES = ("requests", "errors", "prompt_tokens", "cached_tokens", "completion_tokens", "total_tokens",
                 "plan_tokens", "estimated_requests")




async def use_models(api: openai.AsyncOpenAI, *, chats: int, embeddings: bool) -> int:
    for _ in range(chats):
        await api.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    async for _ in await api.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True):
        pass
    if embeddings:
        await api.embeddings.create(model="text-embedding-3-small", input=["one", "two"])
    return chats + 1 + embeddings


async def admin_report(admin: httpx.AsyncClient, filters: dict[str, str], want: int) -> dict[str, Any]:
    """The admin report of this month for one customer, by day and model, once it counts `want` requests."""
    now = datetime.now(UTC)
    params = {**filters, "group_by": "model", "granularity": "day", "from": month_start(now).isoformat(),
              "to": (now + timedelta(hours=1)).isoformat()}
    for _ in range(100):
        response = await admin.get("/usage", params=params)
        assert response.status_code == 200, response.text
        report: dict[str, Any] = response.json()
        if report["totals"]["requests"] >= want:
            return report
        await asyncio.sleep(0.05)
    raise AssertionError(f"the admin report counts {report['totals']['requests']} of {want} requests")


def comparable(report: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(row["period"][:10], row["model_alias"], *(row[name] for name in COUNTER_NAMES)) for row in report["data"]]


def view_rows(view: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(row["date"], row["model"], *(row[name] for name in COUNTER_NAMES)) for row in view["data"]]


async def own_view(api: openai.AsyncOpenAI, expected: list[tuple[Any, ...]]) -> dict[str, Any]:
    """The view as the customer's SDK fetches it, once its live hours caught up (LIVE_TTL_SECONDS, 5 s)."""
    view: dict[str, Any] = {}
    for _ in range(160):
        view = (await api.get("/usage", cast_to=httpx.Response)).json()
        if view_rows(view) == expected:
            return view
        await asyncio.sleep(0.05)
    raise AssertionError(f"the view never matched the admin report: {view_rows(view)} != {expected}")


async def test_a_customers_view_equals_the_admin_report_for_its_deployment(
    stack: LocalStack, service_http: httpx.AsyncClient, admin: httpx.AsyncClient,
) -> None:
    app_id, key = await marketplace_key(stack, service_http)
    deployment = deployment_id_for(app_id)
    customer = sdk(stack, key)
    calls = await use_models(customer, chats=3, embeddings=True)

    team = f"e2e-view-{uuid.uuid4().hex[:8]}"
    assert (await admin.post("/teams", json={"team": team, "plan_id": "starter"})).status_code == 201
    minted = (await admin.post(f"/teams/{team}/keys", json={"description": "view e2e"})).json()
    other = sdk(stack, minted["key"])
    other_calls = await use_models(other, chats=1, embeddings=False)

    report = await admin_report(admin, {"deployment": deployment}, calls)
    view = await own_view(customer, comparable(report))
    assert view["totals"] == report["totals"] and view["totals"]["requests"] == calls
    assert view["plan"]["id"] == "standard" and view["overage_tokens"] == 0
    assert view["included_tokens"]["used"] == view["totals"]["plan_tokens"]
    [shown] = view["keys"]
    assert shown["prefix"] == key[: len(shown["prefix"])] and shown["status"] == "active"
    assert shown["requests"] == calls and "key" not in shown and "key_hash" not in shown

    team_report = await admin_report(admin, {"team": team}, other_calls)
    team_view = await own_view(other, comparable(team_report))
    assert [k["id"] for k in team_view["keys"]] == [minted["key_id"]]
    assert team_view["totals"]["requests"] == other_calls


async def test_an_admin_token_is_not_a_liutong_key(stack: LocalStack, service_http: httpx.AsyncClient,
                                                  admin: httpx.AsyncClient) -> None:
    response = await service_http.get("/v1/usage", headers={"authorization": admin.headers["authorization"]})
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        await sdk(stack, "lt-" + "B" * 43).get("/usage", cast_to=httpx.Response)
