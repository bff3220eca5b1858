"""GET /api/admin/metering/ledger over events written by metering.ledger itself, in real Azurite."""

from __future__ import annotations

import base64
import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from core.hours import HOUR
from core.tables import Tables
from metering.ledger import Entry, Ledger, Status
from tests.admin.conftest import Clock, assert_invalid_request, auth_header
from tests.admin.test_auth import BAD_CREDENTIALS

H = auth_header()
URL = "/api/admin/metering/ledger"
NOW = datetime(2026, 11, 22, 10, 30, tzinfo=UTC)
RESOURCES = ("7F1C2D3E-0000-4000-8000-00000000000A", "1b2c3d4e-0000-4000-8000-00000000000b",
             "99999999-0000-4000-8000-00000000000c")
DIMENSIONS = ("tokens_1k", "tokens_1m")
STATUSES = (Status.PENDING, Status.ACCEPTED, Status.DUPLICATE, Status.ERROR, Status.RETRY, Status.EXPIRED_ROLLED)


@dataclass(frozen=True)
class Seeded:
    resource_id: str
    dimension: str
    hour: datetime
    plan_id: str
    status: Status

    @property
    def key(self) -> tuple[str, str, str]:
        return self.resource_id, self.dimension, self.hour.isoformat()


def _entry(resource_id: str, dimension: str, hour: datetime, plan_id: str, tokens: int) -> Entry:
    return Entry(resource_id=resource_id, dimension=dimension, hour=hour, plan_id=plan_id, tokens=tokens,
                 quantity=Decimal(tokens) / 1000, created_at=NOW, updated_at=NOW)


async def _settle(ledger: Ledger, account: Any, entry: Entry, status: Status) -> None:
    if status is Status.EXPIRED_ROLLED:
        await ledger.roll(account, entry, now=NOW, reason="Expired")
    elif status is not Status.PENDING:
        accepted = status in (Status.ACCEPTED, Status.DUPLICATE)
        await ledger.record(
            entry, status=status, attempts=1, sent_at=NOW, updated_at=NOW,
            last_error=None if accepted else "ServiceUnavailable",
            usage_event_id=f"evt-{entry.hour:%d%H}" if accepted else None,
            accepted_quantity=entry.quantity if accepted else None,
        )


async def seed(tables: Tables) -> list[Seeded]:
    """Events hourly over ~9 days per (resource, dimension), statuses cycling, through the ledger's API."""
    ledger = Ledger(tables)
    seeded: list[Seeded] = []
    index = 0
    for resource_id in RESOURCES:
        for dimension in DIMENSIONS:
            account = await ledger.load(resource_id, dimension, NOW - timedelta(days=30))
            for step in range(0, 9 * 24, 17):
                hour = datetime(2026, 11, 13, tzinfo=UTC) + step * HOUR
                plan_id = ("standard", "payg")[index % 2]
                status = STATUSES[index % len(STATUSES)]
                account = await ledger.open_event(
                    account, _entry(resource_id, dimension, hour, plan_id, 1_000 + index), assigned={},
                    carry_tokens=account.carry_tokens, carry_after=account.carry_after,
                )
                await _settle(ledger, account, account.entries[hour], status)
                if status is Status.EXPIRED_ROLLED:
                    account = await ledger.load(resource_id, dimension, NOW - timedelta(days=30))
                seeded.append(Seeded(resource_id, dimension, hour, plan_id, status))
                index += 1
    return seeded


@pytest.fixture
async def seeded(tables: Tables, clock: Clock) -> list[Seeded]:
    clock.now = NOW
    return await seed(tables)


async def walk(client: httpx.AsyncClient, params: dict[str, str]) -> tuple[list[dict[str, Any]], list[Any], int]:
    """Every page: (all rows, each page's summary, page count)."""
    rows: list[dict[str, Any]] = []
    summaries: list[Any] = []
    token: str | None = None
    pages = 0
    while True:
        query = {**params, **({"continuation_token": token} if token else {})}
        response = await client.get(URL, params=query, headers=H)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["object"] == "list" and body["has_more"] == (body["continuation_token"] is not None)
        assert len(body["data"]) <= int(params.get("limit", 50))
        rows += body["data"]
        summaries.append(body["summary"])
        pages += 1
        token = body["continuation_token"]
        if token is None:
            return rows, summaries, pages


def _summary(entries: list[Seeded]) -> dict[str, int]:
    counts = Counter(e.status.value for e in entries)
    return {s.value: counts.get(s.value, 0) for s in Status}


def _key(row: dict[str, Any]) -> tuple[str, str, str]:
    return row["resource_id"], row["dimension"], row["hour"]


async def test_pages_walk_every_entry_once_with_the_full_summary(
    client: httpx.AsyncClient, seeded: list[Seeded]
) -> None:
    rows, summaries, pages = await walk(client, {"limit": "4"})
    in_range = [e for e in seeded if NOW - timedelta(days=7) <= e.hour < NOW]
    assert 10 < len(in_range) < len(seeded)
    assert sorted(_key(r) for r in rows) == sorted(e.key for e in in_range)
    assert len({_key(r) for r in rows}) == len(rows)
    assert pages == -(-len(in_range) // 4)
    assert all(s == _summary(in_range) for s in summaries)
    assert set(summaries[0]) == {"pending", "accepted", "duplicate", "error", "retry", "expired-rolled"}
    assert all(v > 0 for v in summaries[0].values())


FILTER_CASES: list[dict[str, str]] = [
    {"status": "accepted"},
    {"status": "expired-rolled", "limit": "1"},
    {"plan": "payg", "limit": "3"},
    {"resource_id": RESOURCES[0].lower(), "limit": "2"},  # resource IDs match without regard to case
    {"resource_id": RESOURCES[1].upper(), "status": "retry", "plan": "standard"},
    {"from": "2026-11-13T00:00:00Z", "to": "2026-11-22T00:00:00Z", "limit": "200"},
    {"from": "2026-11-14T00:30:00Z", "to": "2026-11-17T05:00:00", "limit": "5"},  # by event hour start
    {"resource_id": "no-such-resource"},
]


async def test_filters(client: httpx.AsyncClient, seeded: list[Seeded]) -> None:
    for params in FILTER_CASES:  # one seeding for every case: it is the slow part
        await _check_filter(client, seeded, params)


async def _check_filter(client: httpx.AsyncClient, seeded: list[Seeded], params: dict[str, str]) -> None:
    start = datetime.fromisoformat(params.get("from", (NOW - timedelta(days=7)).isoformat())).replace(tzinfo=UTC)
    end = datetime.fromisoformat(params["to"]).replace(tzinfo=UTC) if "to" in params else NOW
    want = [
        e for e in seeded if start <= e.hour < end
        and ("status" not in params or e.status.value == params["status"])
        and ("plan" not in params or e.plan_id == params["plan"])
        and ("resource_id" not in params or e.resource_id.lower() == params["resource_id"].lower())
    ]
    rows, summaries, _ = await walk(client, params)
    assert sorted(_key(r) for r in rows) == sorted(e.key for e in want), params
    assert all(s == _summary(want) for s in summaries), params


async def test_entry_fields(client: httpx.AsyncClient, seeded: list[Seeded]) -> None:
    accepted = next(e for e in seeded if e.status is Status.ACCEPTED and e.hour >= NOW - timedelta(days=7))
    params = {"resource_id": accepted.resource_id, "status": "accepted", "limit": "200"}
    rows = (await client.get(URL, params=params, headers=H)).json()["data"]
    row = next(r for r in rows if _key(r) == accepted.key)
    tokens = row["tokens"]
    assert row == {
        "resource_id": accepted.resource_id, "dimension": accepted.dimension, "hour": accepted.hour.isoformat(),
        "plan_id": accepted.plan_id, "tokens": tokens, "quantity": str(Decimal(tokens) / 1000),
        "status": "accepted", "attempts": 1, "last_error": None, "usage_event_id": f"evt-{accepted.hour:%d%H}",
        "accepted_quantity": str(Decimal(tokens) / 1000), "mismatch": False, "sent_at": NOW.isoformat(),
        "updated_at": NOW.isoformat(),
    }
    pending = (await client.get(URL, params={"status": "pending"}, headers=H)).json()["data"][0]
    assert (pending["sent_at"], pending["usage_event_id"], pending["accepted_quantity"]) == (None, None, None)
    rolled = (await client.get(URL, params={"status": "expired-rolled"}, headers=H)).json()["data"][0]
    assert rolled["last_error"] == "Expired"


async def test_empty_ledger(client: httpx.AsyncClient, clock: Clock) -> None:
    body = (await client.get(URL, headers=H)).json()
    assert body == {"object": "list", "data": [], "summary": {s.value: 0 for s in Status},
                    "continuation_token": None, "has_more": False}


def _token(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


BAD_INPUT: list[tuple[dict[str, str], str]] = [
    ({"from": "not-a-date"}, "from"),
    ({"to": "2026-02-30"}, "to"),
    ({"from": "2026-11-20", "to": "2026-11-10"}, "to"),
    ({"from": "2026-01-01", "to": "2026-04-04T01:00:00Z"}, "from"),
    ({"status": "done"}, "status"),
    ({"status": "Accepted"}, "status"),
    ({"limit": "0"}, "limit"),
    ({"limit": "201"}, "limit"),
    ({"resource_id": "r" * 300}, "resource_id"),
    ({"continuation_token": "!!!"}, "continuation_token"),
    ({"continuation_token": _token(["a"])}, "continuation_token"),
    ({"continuation_token": _token({"PartitionKey": "a", "RowKey": "h|2026112200"})}, "continuation_token"),
    ({"continuation_token": _token({"pk": "a", "rk": "state"})}, "continuation_token"),
    ({"continuation_token": "x" * 3000}, "continuation_token"),
]


@pytest.mark.parametrize(("params", "param"), BAD_INPUT)
async def test_bad_input(client: httpx.AsyncClient, clock: Clock, params: dict[str, str], param: str) -> None:
    clock.now = NOW
    assert_invalid_request(await client.get(URL, params=params, headers=H), param=param)


async def test_refuses_bad_credentials(client: httpx.AsyncClient) -> None:
    for label, (headers, status) in BAD_CREDENTIALS.items():
        response = await client.get(URL, params={"status": "accepted"}, headers=headers)
        assert response.status_code == status, (label, response.text)
        assert response.json()["error"]["type"] == ("authentication_error" if status == 401 else "permission_error")
