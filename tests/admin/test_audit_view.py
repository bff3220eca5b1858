"""GET /api/admin/audit: a time window of audit rows, filtered, newest first, paged, over real Azurite."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest

from core.tables import Tables
from provisioning.audit import AuditEvent, AuditLog
from tests.admin.conftest import Clock, assert_invalid_request, auth_header, create_team, snapshot
from tests.admin.test_auth import BAD_CREDENTIALS
from tests.provisioning.events import application_id
from tests.provisioning.tokens import OID, TENANT

H = auth_header()
APP = application_id("audit-app").lower()
FIELDS = {"object", "at", "action", "outcome", "reason", "actor_oid", "actor_tid", "plan_id", "resource_id", "key_id"}


async def seed(tables: Tables, clock: Clock) -> list[AuditEvent]:
    """Rows over four UTC days, of several actions, actors, resources and outcomes."""
    log = AuditLog(tables)
    base = clock.now - timedelta(days=3)
    events = []
    for i in range(24):
        action = ("admin.team.create", "provisioning.webhook.put", "provisioning.mint", "provisioning.refuse")[i % 4]
        events.append(AuditEvent(
            action=action, outcome="refused" if action.endswith("refuse") else "ok",
            reason="Succeeded" if "webhook" in action else None, actor_oid=OID if i % 3 == 0 else None,
            actor_tid=TENANT if i % 3 == 0 else None, plan_id="standard",
            resource_id=APP if i % 2 else "team/team-a", key_id=f"key-{i:04d}",
            at=base + timedelta(hours=3 * i, microseconds=i),
        ))
    for event in events:
        await log.record(event)
    return events


async def listing(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/admin/audit", params=params, headers=H)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def newest_first(events: list[AuditEvent]) -> list[str]:
    return [e.key_id or "" for e in sorted(events, key=lambda e: e.at, reverse=True)]


async def test_default_window_is_the_last_week_newest_first(
    client: httpx.AsyncClient, tables: Tables, clock: Clock
) -> None:
    events = await seed(tables, clock)
    await AuditLog(tables).record(AuditEvent(action="admin.team.create", at=clock.now - timedelta(days=8)))
    body = await listing(client, limit=200)
    assert [e["key_id"] for e in body["data"]] == newest_first([e for e in events if e.at <= clock.now])
    assert body["has_more"] is False and body["continuation_token"] is None
    first = body["data"][0]
    assert set(first) == FIELDS and first["object"] == "audit_event"
    latest = max((e for e in events if e.at <= clock.now), key=lambda e: e.at)
    assert first["at"] == latest.at.isoformat() and first["action"] == latest.action


async def test_filters(client: httpx.AsyncClient, tables: Tables, clock: Clock) -> None:
    events = await seed(tables, clock)
    window = {"from": (clock.now - timedelta(days=4)).isoformat(), "to": (clock.now + timedelta(days=4)).isoformat()}

    async def keys(**params: Any) -> list[str]:
        return [e["key_id"] for e in (await listing(client, limit=200, **window, **params))["data"]]

    def expect(keep: Any) -> list[str]:
        return newest_first([e for e in events if keep(e)])

    assert await keys(action="admin.") == expect(lambda e: e.action.startswith("admin."))
    assert await keys(action="provisioning.webhook") == expect(lambda e: e.action.startswith("provisioning.webhook"))
    assert await keys(action="provisioning") == expect(lambda e: e.action.startswith("provisioning"))
    assert await keys(actor_oid=OID) == expect(lambda e: e.actor_oid == OID)
    # An application ID as ARM spells it finds the normalised rows.
    assert await keys(resource_id=application_id("audit-app")) == expect(lambda e: e.resource_id == APP)
    assert await keys(key_id="key-0005") == ["key-0005"]
    assert await keys(outcome="refused") == expect(lambda e: e.outcome == "refused")
    assert await keys(outcome="refused", actor_oid=OID) == expect(lambda e: e.outcome == "refused" and e.actor_oid)
    assert await keys(action="nothing.") == []


async def test_window_bounds_are_inclusive(client: httpx.AsyncClient, tables: Tables, clock: Clock) -> None:
    events = await seed(tables, clock)
    low, high = events[5].at, events[11].at
    body = await listing(client, limit=200, **{"from": low.isoformat(), "to": high.isoformat()})
    assert [e["key_id"] for e in body["data"]] == newest_first(events[5:12])
    assert body["from"] == low.isoformat() and body["to"] == high.isoformat()
    day = (await listing(client, limit=200, **{"from": low.date().isoformat(), "to": high.isoformat()}))["data"]
    assert [e["key_id"] for e in day] == newest_first([e for e in events if low.date() <= e.at.date() and e.at <= high])
    # Without an offset a time is UTC, as in the usage report.
    naive = {"from": low.replace(tzinfo=None).isoformat(), "to": high.replace(tzinfo=None).isoformat()}
    assert [e["key_id"] for e in (await listing(client, limit=200, **naive))["data"]] == newest_first(events[5:12])


async def test_pagination_returns_every_row_once_in_order(
    client: httpx.AsyncClient, tables: Tables, clock: Clock
) -> None:
    events = await seed(tables, clock)
    window = {"from": (clock.now - timedelta(days=4)).isoformat(), "to": (clock.now + timedelta(days=4)).isoformat()}
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 5, **window}
        if token:
            params["continuation_token"] = token
        body = await listing(client, **params)
        assert len(body["data"]) <= 5
        seen += [e["key_id"] for e in body["data"]]
        pages += 1
        token = body["continuation_token"]
        assert body["has_more"] == (token is not None)
        if token is None:
            break
    assert seen == newest_first(events) and pages == 5
    filtered = await listing(client, limit=2, action="provisioning.mint", **window)
    rest = {"continuation_token": filtered["continuation_token"], **window}
    second = await listing(client, limit=200, action="provisioning.mint", **rest)
    mints = newest_first([e for e in events if e.action == "provisioning.mint"])
    assert [e["key_id"] for e in filtered["data"] + second["data"]] == mints


async def test_admin_actions_appear_with_their_operator(client: httpx.AsyncClient, clock: Clock) -> None:
    await create_team(client)
    body = await listing(client, action="admin.", **{"to": (clock.now + timedelta(seconds=1)).isoformat()})
    assert [(e["action"], e["actor_oid"], e["actor_tid"], e["resource_id"]) for e in body["data"]] == [
        ("admin.team.create", OID, TENANT, "team/team-a")
    ]


def token(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


BAD_QUERIES: list[dict[str, str]] = [
    {"from": "yesterday"},
    {"to": "2025-13-01T00:00:00Z"},
    {"from": "1999-12-31T00:00:00"},  # out of range
    {"from": "2025-02-01T00:00:00Z", "to": "2025-01-01T00:00:00Z"},
    {"from": "2025-01-01T00:00:00Z", "to": "2025-04-05T00:00:01Z"},  # 94 days
    {"from": "x" * 100},
    {"action": "admin/*"},
    {"action": ""},
    {"key_id": "key 1"},
    {"outcome": "OK!"},
    {"actor_oid": "a\x01b"},
    {"limit": "0"},
    {"limit": "201"},
    {"limit": "ten"},
    {"continuation_token": "!!!"},
    {"continuation_token": token([])},
    {"continuation_token": token({"day": "20000101", "before": "000000000000-abc"})},  # outside the window
    {"continuation_token": token({"day": "TODAY", "before": "000000000000-abc"})},
    {"continuation_token": token({"day": "20250101", "before": "' or 1 eq 1"})},
    {"continuation_token": token({"day": "20250101", "before": "000000000000-abc", "x": "y"})},
    {"continuation_token": "a" * 3000},
    {"tenant": "x"},
]


@pytest.mark.parametrize("params", BAD_QUERIES)
async def test_bad_queries_are_400(client: httpx.AsyncClient, tables: Tables, params: dict[str, str]) -> None:
    before = await snapshot(tables)
    assert_invalid_request(await client.get("/api/admin/audit", params=params, headers=H))
    assert await snapshot(tables) == before


async def test_repeated_parameter_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/admin/audit?outcome=ok&outcome=refused", headers=H)
    assert response.status_code == 400 and response.json()["error"]["param"] == "outcome"


async def test_audit_refuses_bad_credentials(client: httpx.AsyncClient, tables: Tables, clock: Clock) -> None:
    await seed(tables, clock)
    before = await snapshot(tables)
    for label, (headers, status) in BAD_CREDENTIALS.items():
        response = await client.get("/api/admin/audit", headers=headers)
        assert response.status_code == status, (label, response.text)
        assert response.json()["error"]["type"] in ("authentication_error", "permission_error")
        assert "data" not in response.json()
    assert await snapshot(tables) == before
