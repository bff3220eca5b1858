"""GET /v1/usage through the real route table and services on Azurite: a customer sees its own month - equal to
the admin report for it, overage as metering bills it, its keys without hashes - and nothing of anyone else."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

import services
from admin.usage_report import UsageQuery, read_usage, usage_view
from core.hours import HOUR, floor_hour, month_start
from core.settings import Settings
from keystore.keys import display_prefix, generate_key, hash_key, random_key_id
from keystore.models import KeyRecord, KeyStatus
from keystore.teams import Team
from localdev.server import build_app
from metering.rollup import billable_through
from provisioning.deployments import Deployment
from provisioning.notifications import Plan as MarketplacePlan
from usage.direct import write_records
from usage.records import UsageRecord

NOW = datetime.now(UTC)
MONTH = month_start(NOW)
STANDARD_INCLUDED = 20_000_000  # config/plans.json
# An admin-shaped JWT (roles: Liutong.Admin): whatever it carries, it is not a Liutong key.
ENTRA_LIKE_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJyb2xlcyI6WyJMaXV0b25nLkFkbWluIl19.c2ln"


@dataclass
class Customer:
    key: str
    record: KeyRecord
    plan: str
    owner_filter: dict[str, str]  # the admin report's filter for this customer


@dataclass
class World:
    client: httpx.AsyncClient
    built: services.Services
    customers: dict[str, Customer]
    revoked: str
    suspended: str


def key_record(key: str, team: str, *, deployment_id: str | None = None, at: datetime = NOW) -> KeyRecord:
    return KeyRecord(
        key_hash=hash_key(key), key_id=random_key_id(), prefix=display_prefix(key), team=team,
        description="internal note", status=KeyStatus.ACTIVE, created_at=at, deployment_id=deployment_id,
    )


async def team_key(built: services.Services, team: str, plan: str, *, status: str = "active") -> Customer:
    await built.teams.put(Team(team=team, plan_id=plan, status=status))
    key = generate_key()
    record = key_record(key, team)
    await built.keys.insert(record)
    return Customer(key, record, plan, {"team": team})


async def deployment_key(built: services.Services, plan: str) -> Customer:
    deployment_id, when = uuid.uuid4().hex, datetime(2026, 1, 1, tzinfo=UTC)
    await built.deployments.create(Deployment(
        deployment_id=deployment_id, application_id=f"/subscriptions/s/resourceGroups/rg/x/{deployment_id}",
        state="Succeeded", last_event_type="PUT", state_key="0", first_event_time=when, last_event_time=when,
        resource_usage_id=str(uuid.uuid4()),
        plan=MarketplacePlan(publisher="liutong", product="liutong-llm", name=plan, version="1.0.0"),
    ))
    key = generate_key()
    record = key_record(key, f"app-{deployment_id[:16]}", deployment_id=deployment_id)
    await built.keys.insert(record)
    return Customer(key, record, plan, {"deployment": deployment_id})


def usage(customer: Customer, at: datetime, model: str, tokens: int, *, status: int = 200) -> UsageRecord:
    record = customer.record
    return UsageRecord(
        request_id=uuid.uuid4().hex, at=at, team=record.team, key_id=record.key_id, plan_id=customer.plan,
        model_alias=model,
        endpoint="/v1/chat/completions", status=status, latency_ms=5, prompt_tokens=tokens // 2,
        completion_tokens=tokens - tokens // 2, total_tokens=tokens, plan_tokens=tokens,
        deployment_id=record.deployment_id,
    )


def this_month(hours_ago: float) -> datetime:
    return max(MONTH, NOW - timedelta(hours=hours_ago))


@pytest.fixture
async def world(make_settings: Callable[..., Settings]) -> AsyncIterator[World]:
    built = await services.Services.create(make_settings())
    previous = services._current
    services.install(built)
    acme = await team_key(built, "acme", "standard")
    customers = {
        "acme": acme, "rival": await team_key(built, "rival", "starter"),
        "prepaid": await deployment_key(built, "prepaid"),
    }
    second = await team_key(built, "acme", "standard")
    await built.keys.revoke(second.record.key_hash, at=NOW)
    suspended = await team_key(built, "dormant", "starter", status="suspended")
    await built.limiter.credit(f"dep-{customers['prepaid'].record.deployment_id}", 5_000)
    records = [
        usage(acme, this_month(0), "gpt-4o-mini", 25_000_000), usage(acme, this_month(0), "gpt-4o", 300),
        usage(acme, this_month(3), "gpt-4o-mini", 400, status=429), usage(second, this_month(9), "gpt-4o", 500),
        usage(acme, this_month(50), "gpt-4o-mini", 600), usage(customers["rival"], this_month(0), "gpt-4o-mini", 7),
        usage(customers["prepaid"], this_month(1), "gpt-4o", 11),
    ]
    await write_records(built.tables, records, shard="s1")
    await write_records(built.tables, [usage(acme, this_month(2), "gpt-4o-mini", 13)], shard="s2")
    app = build_app(built.settings)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service") as client:
            yield World(client, built, customers, second.key, suspended.key)
    finally:
        services.install(previous)
        await built.close()


async def view(world: World, key: str) -> dict[str, Any]:
    response = await world.client.get("/v1/usage", headers={"authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


async def admin_rows(world: World, filters: dict[str, str]) -> dict[str, Any]:
    query = UsageQuery(start=MONTH, end=floor_hour(NOW) + HOUR, group_by=("model",), filters=filters)
    return usage_view(await read_usage(world.built.tables, query))


async def test_each_customer_sees_what_the_admin_report_counts_for_it(world: World) -> None:
    for customer in world.customers.values():
        body = await view(world, customer.key)
        report = await admin_rows(world, customer.owner_filter)
        assert body["object"] == "usage_summary" and body["month"] == f"{MONTH:%Y-%m}"
        assert body["totals"] == report["totals"]
        assert [(row["date"], row["model"]) for row in body["data"]] == [
            (row["period"][:10], row["model_alias"]) for row in report["data"]
        ]
        for mine, theirs in zip(body["data"], report["data"], strict=True):
            assert {k: v for k, v in mine.items() if k not in ("object", "date", "model")} == {
                k: v for k, v in theirs.items() if k not in ("period", "model_alias")
            }


async def test_included_tokens_and_overage_are_counted_as_metering_bills_them(world: World) -> None:
    body = await view(world, world.customers["acme"].key)
    used = body["totals"]["plan_tokens"]
    assert used == 25_000_000 + 300 + 400 + 500 + 600 + 13
    assert body["included_tokens"] == {"limit": STANDARD_INCLUDED, "used": used, "remaining": 0}
    assert body["overage_tokens"] == billable_through([(NOW, used)], STANDARD_INCLUDED, NOW) == used - STANDARD_INCLUDED
    assert body["plan"] == {"id": "standard", "mode": "quota", "monthly_included_tokens": STANDARD_INCLUDED,
                            "overage": "bill"}
    assert body["prepaid_balance"] is None

    rival = await view(world, world.customers["rival"].key)
    assert rival["included_tokens"] == {"limit": 1_000_000, "used": 7, "remaining": 999_993}
    assert rival["overage_tokens"] == 0  # overage "block": nothing is billed

    prepaid = await view(world, world.customers["prepaid"].key)
    assert prepaid["prepaid_balance"] == {"available_tokens": 5_000, "reserved_tokens": 0}
    assert prepaid["included_tokens"] is None and prepaid["overage_tokens"] == 0


async def test_keys_show_status_and_times_but_never_hashes_keys_or_notes(world: World) -> None:
    acme = world.customers["acme"]
    body = await view(world, acme.key)
    keys = {k["id"]: k for k in body["keys"]}
    assert len(keys) == 2
    mine = keys[acme.record.key_id]
    assert mine["prefix"] == acme.record.prefix and mine["status"] == "active"
    assert mine["created_at"] == int(acme.record.created_at.timestamp()) and mine["revoked_at"] is None
    [other] = [k for k in keys.values() if k is not mine]
    assert other["status"] == "revoked" and other["revoked_at"] == int(NOW.timestamp())
    assert other["requests"] == 1 and other["total_tokens"] == 500
    text = json.dumps(body)
    assert acme.key not in text and acme.record.key_hash not in text and "internal note" not in text
    assert world.revoked not in text and hash_key(world.revoked) not in text


async def test_nothing_of_another_customer_is_in_a_view(world: World) -> None:
    bodies = {name: json.dumps(await view(world, c.key)) for name, c in world.customers.items()}
    for name, customer in world.customers.items():
        for other, text in bodies.items():
            if other != name:
                assert customer.record.key_id not in text
                assert customer.record.prefix not in text
                assert customer.record.team not in text


@pytest.mark.parametrize(("headers", "status", "code"), [
    ({}, 401, "missing_token"),
    ({"authorization": "Bearer lt-" + "A" * 43}, 401, "invalid_api_key"),
    ({"authorization": f"Bearer {ENTRA_LIKE_TOKEN}"}, 401, "invalid_api_key"),
])
async def test_no_usable_key_is_401(world: World, headers: dict[str, str], status: int, code: str) -> None:
    response = await world.client.get("/v1/usage", headers=headers)
    assert response.status_code == status and response.json()["error"]["code"] == code


async def test_a_revoked_key_is_401_and_a_suspended_team_403(world: World) -> None:
    revoked = await world.client.get("/v1/usage", headers={"authorization": f"Bearer {world.revoked}"})
    assert revoked.status_code == 401 and revoked.json()["error"]["code"] == "invalid_api_key"
    suspended = await world.client.get("/v1/usage", headers={"authorization": f"Bearer {world.suspended}"})
    assert suspended.status_code == 403 and suspended.json()["error"]["type"] == "permission_error"


async def test_query_parameters_are_refused_with_their_name(world: World) -> None:
    auth = {"authorization": f"Bearer {world.customers['acme'].key}"}
    response = await world.client.get("/v1/usage", params={"team": "rival"}, headers=auth)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "team" and response.json()["error"]["code"] == "unknown_parameter"


@pytest.mark.parametrize("method", ["HEAD", "POST", "DELETE"])
async def test_other_methods_are_405(world: World, method: str) -> None:
    auth = {"authorization": f"Bearer {world.customers['acme'].key}"}
    response = await world.client.request(method, "/v1/usage", headers=auth)
    assert response.status_code == 405
    if method != "HEAD":
        assert response.json()["error"]["code"] == "method_not_allowed"
