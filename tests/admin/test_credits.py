"""Prepaid credit through the admin API: top-up (idempotent), show, ledger (JSON and CSV), adjust, convert, audit;
bad input is 400 with `param` and writes nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

from admin import credits_handlers
from admin.service import AdminService
from core.settings import Settings
from core.tables import Tables
from tests.admin.conftest import Clock, assert_invalid_request, auth_header, create_team, snapshot

BASE = "/api/admin/teams/shop/credits"


@pytest.fixture(autouse=True)
def service_settings(monkeypatch: pytest.MonkeyPatch, make_settings: Callable[..., Settings]) -> None:
    async def current() -> Settings:
        return make_settings()

    monkeypatch.setattr(credits_handlers, "service_settings", current)


async def post(client: httpx.AsyncClient, path: str, body: dict[str, Any], key: str | None = None) -> httpx.Response:
    headers = {**auth_header(), **({"idempotency-key": key} if key else {})}
    return await client.post(path, json=body, headers=headers)


async def test_top_up_show_ledger_adjust_convert(
    client: httpx.AsyncClient, admin_service: AdminService, tables: Tables, clock: Clock
) -> None:
    await create_team(client, "shop", plan_id="prepaid")
    soon = (clock.now + timedelta(days=10)).isoformat()
    first = await post(client, BASE, {"tokens": 1000, "reference": "INV-7"}, key="order-1")
    assert first.status_code == 201, first.text
    lot = first.json()["lot"]
    assert lot["expires_at"] == (clock.now + timedelta(days=365)).isoformat() and lot["reference"] == "INV-7"
    again = await post(client, BASE, {"tokens": 1000, "reference": "INV-7"}, key="order-1")
    assert again.status_code == 200 and again.json()["duplicate"] and again.json()["available"] == 1000
    pack = await post(client, BASE, {"tokens": 300, "model": "gpt-4o", "expires_at": soon}, key="order-2")
    assert pack.status_code == 201, pack.text
    shown = (await client.get(BASE, headers=auth_header())).json()
    assert (shown["available"], shown["expiring_within_30_days"]) == (1300, 300)
    assert [lot["model"] for lot in shown["lots"]] == ["gpt-4o", None]  # earliest expiry first
    adjusted = await post(client, f"{BASE}/adjust", {"tokens": -200, "reason": "goodwill refund"})
    assert adjusted.json()["available"] == 1100
    converted = await post(client, f"{BASE}/convert", {"model": "gpt-4o", "reason": "retired"})
    assert converted.json() == {"object": "credit_conversion", "owner": "team-shop", "model": "gpt-4o",
                                "to_model": None, "moved": 300}
    ledger = (await client.get(f"{BASE}/ledger", headers=auth_header())).json()["data"]
    assert [(row["kind"], row["tokens"]) for row in ledger] == [
        ("top_up", 1000), ("top_up", 300), ("adjustment", -200), ("conversion", 0)]
    assert ledger[2]["reason"] == "goodwill refund"
    csv = await client.get(f"{BASE}/ledger", params={"format": "csv"}, headers=auth_header())
    assert csv.headers["content-type"].startswith("text/csv") and csv.text.count("\n") == 5
    actions = [row["action"] async for row in tables.table("audit").list_entities()]
    assert sorted(a for a in actions if ".credits." in a) == [
        "admin.team.credits.adjust", "admin.team.credits.convert", "admin.team.credits.top_up",
        "admin.team.credits.top_up"]
    balances = (await client.get("/api/admin/credits", headers=auth_header())).json()["data"]
    assert [(b["owner"], b["available"]) for b in balances] == [("team-shop", 1100)]


@pytest.mark.parametrize(("path", "body", "param"), [
    ("", {"tokens": 0}, "tokens"),
    ("", {"tokens": -5}, "tokens"),
    ("", {"tokens": 10, "expires_at": "2000-01-01T00:00:00+00:00"}, "expires_at"),
    ("", {"tokens": 10, "model": "text-embedding-3-small"}, "model"),  # not a model of the prepaid plan
    ("", {"tokens": 10, "model": "no-such-model"}, "model"),
    ("/adjust", {"tokens": 5}, "reason"),
    ("/adjust", {"tokens": -5, "reason": "below zero"}, "tokens"),
    ("/convert", {"model": "gpt-4o"}, "reason"),
])
async def test_bad_credit_input_is_400_and_writes_nothing(
    client: httpx.AsyncClient, tables: Tables, path: str, body: dict[str, Any], param: str
) -> None:
    await create_team(client, "shop", plan_id="prepaid")
    before = await snapshot(tables)
    assert_invalid_request(await post(client, BASE + path, body), param=param)
    assert await snapshot(tables) == before


async def test_a_team_on_a_quota_plan_takes_no_credit(client: httpx.AsyncClient) -> None:
    await create_team(client, "shop", plan_id="starter")
    assert_invalid_request(await post(client, BASE, {"tokens": 10}), param="plan_id")
