"""GET /api/admin/usage/verify: a recount of the raw usage of whole hours against the aggregates, over Azurite."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ServiceResponseError
from azure.data.tables import UpdateMode

from admin.service import AdminService
from core.settings import Settings
from core.tables import Tables, int64
from localdev import azurite
from tests.admin.conftest import Clock, assert_invalid_request, auth_header
from tests.admin.test_auth import BAD_CREDENTIALS
from tests.admin.usage_seed import NOW
from tests.usage.test_verify import records_in
from usage.direct import write_records
from usage.groups import GROUP_COLUMNS, group_key, group_of
from usage.records import UsageRecord
from usage.store import AGGREGATE_PREFIX, partition_key

H = auth_header()
URL = "/api/admin/usage/verify"
HOUR = datetime(2026, 11, 20, 9, tzinfo=UTC)
SHARDS = ("a1b2c3", "d4e5f6")


@pytest.fixture
async def written(tables: Tables, clock: Clock) -> list[UsageRecord]:
    clock.now = NOW
    records = records_in(HOUR, 12) + records_in(HOUR + timedelta(hours=1), 8, start=50)
    for index, shard in enumerate(SHARDS):
        await write_records(tables, records[index::2], shard=shard)
    return records


async def verify(client: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    response = await client.get(URL, params=params, headers=H)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


async def test_consistent_hours_verify_clean(client: httpx.AsyncClient, written: list[UsageRecord]) -> None:
    body = await verify(client, **{"from": "2026-11-20T09:00:00Z", "to": "2026-11-20T11:00:00Z"})
    assert body == {
        "object": "usage.verification", "from": HOUR.isoformat(), "to": (HOUR + timedelta(hours=2)).isoformat(),
        "hours": 2, "partitions": 4, "records": 20, "sealed": 0, "differences": 0, "ok": True, "data": [],
    }


async def test_bounds_widen_to_whole_hours_and_to_defaults_to_one_hour(
    client: httpx.AsyncClient, written: list[UsageRecord]
) -> None:
    widened = await verify(client, **{"from": "2026-11-20T09:17:03Z", "to": "2026-11-20T10:00:01Z"})
    assert (widened["from"], widened["to"], widened["records"]) == (HOUR.isoformat(), "2026-11-20T11:00:00+00:00", 20)
    one = await verify(client, **{"from": "2026-11-20T18:30:00+08:00"})  # 10:30 UTC
    assert (one["from"], one["to"], one["hours"], one["records"]) == (
        "2026-11-20T10:00:00+00:00", "2026-11-20T11:00:00+00:00", 1, 8,
    )
    longest = await verify(client, **{"from": "2026-11-20T00:00:00Z", "to": "2026-11-21T00:00:00Z"})
    assert (longest["hours"], longest["ok"]) == (24, True)


async def test_a_corrupted_aggregate_row_is_reported(
    client: httpx.AsyncClient, tables: Tables, written: list[UsageRecord]
) -> None:
    mine = written[0:12:2]  # the first shard's records of the first hour
    group = group_of(mine[0])
    true = sum(r.completion_tokens for r in mine if group_of(r) == group)
    row = {"PartitionKey": partition_key(HOUR, SHARDS[0]), "RowKey": AGGREGATE_PREFIX + group_key(group),
           "completion_tokens": int64(true - 1)}
    await tables.table("usage").upsert_entity(row, mode=UpdateMode.MERGE)
    body = await verify(client, **{"from": "2026-11-20T09:00:00Z", "to": "2026-11-20T11:00:00Z"})
    assert (body["ok"], body["differences"]) == (False, 1)
    assert body["data"] == [{
        "hour": HOUR.isoformat(), "shard": SHARDS[0], "group": dict(zip(GROUP_COLUMNS, group, strict=True)),
        "source": "partition", "counter": "completion_tokens", "raw": true, "stored": true - 1, "problem": "differs",
    }]


BAD_INPUT: list[tuple[dict[str, str], str]] = [
    ({}, "from"),
    ({"to": "2026-11-20T10:00:00Z"}, "from"),
    ({"from": "yesterday"}, "from"),
    ({"from": "x" * 100}, "from"),
    ({"from": "1999-12-31"}, "from"),
    ({"from": "2026-11-20T00:00:00+25:00"}, "from"),
    ({"from": "2026-11-20T09:00:00Z", "to": "2026-13-01"}, "to"),
    ({"from": "2026-11-20T09:00:00Z", "to": "2026-11-20T08:00:00Z"}, "to"),
    ({"from": "2026-11-20T09:00:00Z", "to": "2026-11-20T09:00:00Z"}, "to"),
    ({"from": "2026-11-20T00:00:00Z", "to": "2026-11-21T00:00:01Z"}, "from"),  # 25 whole hours
    ({"from": "2026-11-20T00:30:00Z", "to": "2026-11-21T00:30:00Z"}, "from"),  # 24 hours, 25 whole ones
    ({"from": "2026-11-01T00:00:00Z", "to": "2026-11-05T00:00:00Z"}, "from"),
    ({"from": "2026-08-24T09:00:00Z", "to": "2026-08-24T12:00:00Z"}, "from"),  # before the 90 days raw rows live
]


@pytest.mark.parametrize(("params", "param"), BAD_INPUT)
async def test_bad_input(client: httpx.AsyncClient, clock: Clock, params: dict[str, str], param: str) -> None:
    clock.now = NOW
    assert_invalid_request(await client.get(URL, params=params, headers=H), param=param)


async def test_the_first_hour_raw_rows_are_kept_is_accepted(client: httpx.AsyncClient, clock: Clock) -> None:
    clock.now = NOW
    body = await verify(client, **{"from": "2026-08-24T10:00:00Z"})
    assert (body["hours"], body["ok"]) == (1, True)


async def test_refuses_bad_credentials(client: httpx.AsyncClient, written: list[UsageRecord]) -> None:
    for label, (headers, status) in BAD_CREDENTIALS.items():
        response = await client.get(URL, params={"from": "2026-11-20T09:00:00Z"}, headers=headers)
        assert response.status_code == status, (label, response.text)
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["type"] == ("authentication_error" if status == 401 else "permission_error")


async def test_storage_unreachable_answers_503(
    client: httpx.AsyncClient, admin_service: AdminService, make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch, clock: Clock,
) -> None:
    clock.now = NOW
    closed = make_settings(storage_connection_string=azurite.connection_string("127.0.0.1", azurite.free_port()))
    unreachable = Tables(closed, retry_total=0)
    monkeypatch.setattr(admin_service, "tables", unreachable)
    try:
        response = await client.get(URL, params={"from": "2026-11-20T09:00:00Z"}, headers=H)
    finally:
        await unreachable.close()
    assert_storage_unavailable(response)


async def test_a_failure_after_the_raw_rows_answers_503_not_part_of_a_report(
    client: httpx.AsyncClient, tables: Tables, written: list[UsageRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    def reset(*args: Any, **kwargs: Any) -> Any:
        raise ServiceResponseError("connection reset by peer")

    monkeypatch.setattr(tables.table("usageagg"), "query_entities", reset)
    response = await client.get(URL, params={"from": "2026-11-20T09:00:00Z"}, headers=H)
    assert_storage_unavailable(response)


def assert_storage_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert set(body) == {"error"}  # no part of a report
    error = body["error"]
    assert (error["type"], error["code"], error["param"]) == ("server_error", "storage_unavailable", None)
    assert error["message"].startswith("Storage is unavailable")
