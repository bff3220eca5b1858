"""BYOK through the whole local stack: an operator registers a team's own provider key (Key Vault stand-in), the
team's calls reach the mock upstream with it, nothing is charged, and no table row or log line holds the key."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import openai
import pytest
from azure.data.tables.aio import TableServiceClient

from localdev.mock_upstream import MockConfig
from localdev.stack import LocalStack

pytestmark = pytest.mark.e2e

MODEL = "gpt-4o-mini"
TEAM_KEY = "sk-byok-e2e-" + uuid.uuid4().hex
WRONG_KEY = "sk-byok-wrong-" + uuid.uuid4().hex
MESSAGES = [{"role": "user", "content": "hello with my own key"}]


@pytest.fixture
def mock(stack: LocalStack) -> Iterator[MockConfig]:
    """The provider checks the team's key for MODEL; the knob is undone for the session's other tests."""
    assert stack.upstream is not None
    config = stack.upstream.config
    config.required_keys = {MODEL: TEAM_KEY}
    try:
        yield config
    finally:
        config.required_keys = {}


async def chat(stack: LocalStack, key: str) -> int:
    async with openai.AsyncOpenAI(base_url=f"{stack.service_url}/v1", api_key=key, max_retries=0) as client:
        try:
            await client.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]
        except openai.APIStatusError as error:
            return error.status_code
    return 200


async def team_with_key(admin: httpx.AsyncClient, plan: str) -> tuple[str, str]:
    team = f"byok-{uuid.uuid4().hex[:8]}"
    assert (await admin.post("/teams", json={"team": team, "plan_id": plan})).status_code == 201
    minted = await admin.post(f"/teams/{team}/keys", json={"description": "byok e2e"})
    assert minted.status_code == 201, minted.text
    return team, minted.json()["key"]


async def usage_totals(admin: httpx.AsyncClient, team: str, requests: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    params = {"team": team, "group_by": "team", "granularity": "hour",
              "from": (now - timedelta(hours=1)).isoformat(), "to": (now + timedelta(minutes=5)).isoformat()}
    totals: dict[str, Any] = {}
    for _ in range(100):
        report = await admin.get("/usage", params=params)
        assert report.status_code == 200, report.text
        totals = report.json()["totals"]
        if totals.get("requests", 0) >= requests:
            return totals
        await asyncio.sleep(0.05)
    raise AssertionError(f"usage never reached {requests} requests: {totals}")


async def everything_in_tables(stack: LocalStack) -> str:
    connection = stack.settings().storage_connection_string
    assert connection is not None
    rows: list[str] = []
    async with TableServiceClient.from_connection_string(connection.get_secret_value()) as service:
        async for table in service.list_tables():
            async for entity in service.get_table_client(table.name).list_entities():
                rows.append(repr(dict(entity)))
    assert rows
    return "\n".join(rows)


async def test_a_teams_own_key_serves_its_calls_free_and_is_kept_only_in_key_vault(
    stack: LocalStack, admin: httpx.AsyncClient, mock: MockConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert stack.upstream is not None and stack.vault is not None
    team, key = await team_with_key(admin, "prepaid")  # a prepaid balance of 0: Liutong's credential is refused
    assert await chat(stack, key) == 429
    before = set(stack.vault.names())

    refused = await admin.put(f"/teams/{team}/byok/{MODEL}", json={"api_key": WRONG_KEY})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "api_key", refused.text
    assert WRONG_KEY not in refused.text and set(stack.vault.names()) == before  # nothing stored
    assert (await admin.get(f"/teams/{team}/byok")).json()["data"] == []

    registered = await admin.put(f"/teams/{team}/byok/{MODEL}", json={"api_key": TEAM_KEY})
    assert registered.status_code == 200, registered.text
    view = registered.json()
    assert (view["alias"], view["last4"], view["fallback"]) == (MODEL, TEAM_KEY[-4:], True)
    assert TEAM_KEY[:-4] not in registered.text
    [secret_name] = set(stack.vault.names()) - before
    assert secret_name.startswith("byok-")

    assert await chat(stack, key) == 200  # this instance forgets its cache at once
    assert await chat(stack, key) == 200
    sent = [r for r in stack.upstream.received if r.path == "/v1/chat/completions" and r.body.get("model") == MODEL]
    assert sent[-1].headers["authorization"] == f"Bearer {TEAM_KEY}"
    totals = await usage_totals(admin, team, 2)
    assert totals["byok_requests"] == 2 and totals["plan_tokens"] == 0 and totals["total_tokens"] > 0
    listed = (await admin.get(f"/teams/{team}/byok")).json()["data"]
    assert [(c["alias"], c["last4"]) for c in listed] == [(MODEL, TEAM_KEY[-4:])]

    removed = await admin.delete(f"/teams/{team}/byok/{MODEL}")
    assert removed.status_code == 200 and removed.json()["deleted"] is True, removed.text
    assert secret_name not in stack.vault.names()
    mock.required_keys = {}
    assert await chat(stack, key) == 429  # the plan allows the fallback: Liutong's credential, charged again
    assert (await admin.delete(f"/teams/{team}/byok/{MODEL}")).json()["error"]["param"] == "alias"

    audit = await admin.get("/audit", params={"action": "admin.team.byok", "resource_id": f"team/{team}"})
    actions = sorted(row["action"] for row in audit.json()["data"])
    assert actions == ["admin.team.byok.remove", "admin.team.byok.set"], audit.text
    assert {row["reason"] for row in audit.json()["data"]} == {f"model {MODEL}"}

    stored = await everything_in_tables(stack)
    assert TEAM_KEY[:-4] not in stored and WRONG_KEY[:-4] not in stored
    assert TEAM_KEY[:-4] not in caplog.text and WRONG_KEY[:-4] not in caplog.text


@pytest.mark.parametrize(("alias", "status"), [("no-such-model", 404), ("text-embedding-3-small", 400)])
async def test_an_alias_the_plan_lacks_is_refused_naming_it(
    stack: LocalStack, admin: httpx.AsyncClient, alias: str, status: int
) -> None:
    team, _ = await team_with_key(admin, "prepaid")
    answer = await admin.put(f"/teams/{team}/byok/{alias}", json={"api_key": TEAM_KEY})
    assert answer.status_code == status and answer.json()["error"]["param"] == "alias", answer.text


async def test_a_plan_that_forbids_byok_or_a_bad_body_is_refused(stack: LocalStack, admin: httpx.AsyncClient) -> None:
    team, _ = await team_with_key(admin, "starter")
    forbidden = await admin.put(f"/teams/{team}/byok/{MODEL}", json={"api_key": TEAM_KEY})
    assert forbidden.status_code == 400 and forbidden.json()["error"]["code"] == "byok_not_allowed"
    prepaid, _ = await team_with_key(admin, "prepaid")
    for body, param in (({"api_key": "short"}, "api_key"), ({"key": TEAM_KEY}, "key"), ({}, "api_key")):
        answer = await admin.put(f"/teams/{prepaid}/byok/{MODEL}", json=body)
        assert answer.status_code == 400 and answer.json()["error"]["param"] == param, answer.text
        assert "short" not in answer.text
    unknown = await admin.get("/teams/no-such-team/byok")
    assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "team"
