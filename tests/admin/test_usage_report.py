"""GET /api/admin/usage: sums checked against records written through the usage writer's own layout."""

from __future__ import annotations

import csv
import dataclasses
import io
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ServiceRequestError

from core.hours import ceil_hour, floor_hour
from core.tables import Tables
from tests.admin.conftest import Clock, assert_invalid_request, auth_header
from tests.admin.test_auth import BAD_CREDENTIALS
from tests.admin.usage_seed import NOW, TEAMS, record_at, write
from usage.records import UsageRecord

H = auth_header()
URL = "/api/admin/usage"
FILTER_COLUMNS = {"team": "team", "deployment": "deployment_id", "plan": "plan_id", "model": "model_alias"}
GROUP_COLUMNS = {**FILTER_COLUMNS, "key": "key_id"}
TOKENS = ("prompt_tokens", "cached_tokens", "completion_tokens", "total_tokens", "plan_tokens")
UNIT_COUNTERS = {"image": "images", "audio_second": "audio_seconds", "character": "characters"}
COUNTERS = ("requests", "errors", *TOKENS, "estimated_requests", "reasoning_tokens", *UNIT_COUNTERS.values(),
            "auto_requests", "byok_requests")


def expected(
    records: list[UsageRecord], start: datetime, end: datetime, granularity: str = "day",
    group_by: tuple[str, ...] = ("plan", "model"), **filters: str,
) -> list[dict[str, Any]]:
    sums: dict[tuple[Any, ...], dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
    for r in records:
        if not start <= r.at < end or any(getattr(r, FILTER_COLUMNS[k]) != v for k, v in filters.items()):
            continue
        period = r.at.replace(minute=0, second=0, microsecond=0)
        period = period.replace(hour=0) if granularity == "day" else period
        key = (period, *(getattr(r, GROUP_COLUMNS[g]) for g in group_by))
        row = sums[key]
        row["requests"] += 1
        row["errors"] += r.status >= 400
        row["estimated_requests"] += r.estimated
        row["reasoning_tokens"] += r.reasoning_tokens
        row["auto_requests"] += r.auto
        row["byok_requests"] += r.byok
        if r.unit is not None:
            row[UNIT_COUNTERS[r.unit]] += r.quantity
        for name in TOKENS:
            row[name] += getattr(r, name)
    ordered = sorted(sums, key=lambda k: (k[0], *((v is not None, v or "") for v in k[1:])))
    return [
        {"period": k[0].isoformat(), **{GROUP_COLUMNS[g]: v for g, v in zip(group_by, k[1:], strict=True)}, **sums[k]}
        for k in ordered
    ]


def totals(rows: list[dict[str, Any]]) -> dict[str, int]:
    return {name: sum(r[name] for r in rows) for name in COUNTERS}


async def test_default_is_the_last_seven_days_by_plan_and_model(
    client: httpx.AsyncClient, records: list[UsageRecord]
) -> None:
    response = await client.get(URL, headers=H)
    assert response.status_code == 200, response.text
    body = response.json()
    end = ceil_hour(NOW)  # the 168 whole hours up to the end of the current one
    start = end - timedelta(days=7)
    assert {k: body[k] for k in ("object", "from", "to", "granularity", "group_by")} == {
        "object": "list", "from": start.isoformat(), "to": end.isoformat(), "granularity": "day",
        "group_by": ["plan", "model"],
    }
    want = expected(records, start, end)
    assert body["data"] == want and body["totals"] == totals(want)
    assert body["totals"]["requests"] == sum(1 for r in records if start <= r.at < end)
    assert set(body["data"][0]) == {"period", "plan_id", "model_alias", *COUNTERS}  # metadata only


CASES: list[tuple[dict[str, str], dict[str, Any]]] = [
    ({"granularity": "hour", "group_by": "team,key"}, {"granularity": "hour", "group_by": ("team", "key")}),
    ({"group_by": "deployment, model , team"}, {"group_by": ("deployment", "model", "team")}),
    ({"group_by": ""}, {"group_by": ()}),
    ({"group_by": "key", "team": "team-a", "model": "gpt-4o"}, {"group_by": ("key",), "team": "team-a",
                                                              "model": "gpt-4o"}),
    ({"deployment": "dep-2", "plan": "starter", "group_by": "team,deployment,plan,model,key"},
     {"deployment": "dep-2", "plan": "starter", "group_by": ("team", "deployment", "plan", "model", "key")}),
    ({"team": "no-such-team"}, {"team": "no-such-team"}),
    ({"team": "o'neil and co", "group_by": "team"}, {"team": "o'neil and co", "group_by": ("team",)}),
    ({"team": TEAMS[2], "granularity": "hour"}, {"team": TEAMS[2], "granularity": "hour"}),
]


@pytest.mark.parametrize(("params", "reference"), CASES)
@pytest.mark.parametrize(
    "bounds",
    [
        (datetime(2026, 11, 13, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC)),  # aligned: every record
        # Inside hours: widened to the whole hours around them.
        (datetime(2026, 11, 15, 5, 17, 3, tzinfo=UTC), datetime(2026, 11, 21, 13, 0, 1, tzinfo=UTC)),
    ],
)
async def test_sums_match_the_records(
    client: httpx.AsyncClient, records: list[UsageRecord], params: dict[str, str], reference: dict[str, Any],
    bounds: tuple[datetime, datetime],
) -> None:
    start, end = bounds
    if reference.get("granularity") == "hour":
        end = min(end, start + timedelta(days=14))
    query = {**params, "from": start.isoformat(), "to": end.isoformat()}
    body = (await client.get(URL, params=query, headers=H)).json()
    want = expected(records, floor_hour(start), ceil_hour(end), **reference)
    assert bool(want) == (params.get("team") != "no-such-team")
    assert (body["from"], body["to"]) == (floor_hour(start).isoformat(), ceil_hour(end).isoformat())
    assert body["data"] == want and body["totals"] == totals(want)
    assert body["group_by"] == list(reference.get("group_by", ("plan", "model")))


async def test_one_hour_by_hand(client: httpx.AsyncClient, tables: Tables, clock: Clock) -> None:
    clock.now = NOW
    hour = datetime(2026, 11, 20, 9, tzinfo=UTC)
    base = record_at(random.Random(1), 0, hour)
    rows = [
        dataclasses.replace(base, request_id="r1", status=200, prompt_tokens=10, cached_tokens=4,
                            completion_tokens=5, total_tokens=15, plan_tokens=20, estimated=False, team="t",
                            reasoning_tokens=3, unit=None, quantity=0, auto=True),
        dataclasses.replace(base, request_id="r2", at=hour + timedelta(minutes=59, seconds=59), status=502,
                            prompt_tokens=1, cached_tokens=0, completion_tokens=0, total_tokens=1, plan_tokens=1,
                            estimated=True, team="t", reasoning_tokens=0, unit="image", quantity=2, auto=False),
    ]
    await write(tables, rows)
    body = (await client.get(URL, params={"granularity": "hour", "group_by": "team",
                                           "from": "2026-11-20T09:00:00", "to": "2026-11-20T10:00:00Z"},
                             headers=H)).json()
    assert body["data"] == [{
        "period": "2026-11-20T09:00:00+00:00", "team": "t", "requests": 2, "errors": 1, "prompt_tokens": 11,
        "cached_tokens": 4, "completion_tokens": 5, "total_tokens": 16, "plan_tokens": 21, "estimated_requests": 1,
        "reasoning_tokens": 3, "images": 2, "audio_seconds": 0, "characters": 0, "auto_requests": 1, "byok_requests": 0,
    }]
    # An unencoded "+" arrives as a space; an encoded one as "+".
    query = "granularity=hour&group_by=team&from=2026-11-20T17:00:00+08:00&to=2026-11-20T18:00:00%2B08:00"
    spaced = await client.get(f"{URL}?{query}", headers=H)
    assert spaced.json()["from"] == "2026-11-20T09:00:00+00:00" and spaced.json()["data"] == body["data"]


async def test_csv_matches_json_and_guards_formulas(client: httpx.AsyncClient, records: list[UsageRecord]) -> None:
    params = {"group_by": "team,deployment,model", "from": "2026-11-14", "to": "2026-11-22T10:30:00Z"}
    body = (await client.get(URL, params=params, headers=H)).json()
    response = await client.get(URL, params={**params, "format": "csv"}, headers=H)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        'attachment; filename="liutong-usage-20261114T000000Z-20261122T110000Z.csv"'
    )
    table = list(csv.reader(io.StringIO(response.text)))
    header, rows = table[0], table[1:]
    assert header == ["period", "team", "deployment_id", "model_alias", *COUNTERS]
    assert len(rows) == len(body["data"]) > 20
    guarded = {"=": "'=", "+": "'+", "-": "'-", "@": "'@"}
    teams_seen = set()
    for row, item in zip(rows, body["data"], strict=True):
        cells = dict(zip(header, row, strict=True))
        assert [int(cells[c]) for c in COUNTERS] == [item[c] for c in COUNTERS]
        assert cells["period"] == item["period"] and cells["deployment_id"] == (item["deployment_id"] or "")
        team = item["team"]
        assert cells["team"] == ("'" + team if team[0] in guarded else team)
        teams_seen.add(team[0])
    assert set(guarded) <= teams_seen  # every dangerous first character was exercised


async def test_reads_aggregates_only_never_raw_rows(
    client: httpx.AsyncClient, tables: Tables, records: list[UsageRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One query of the aggregate copy for the range; of the usage table, only point reads of its headers."""
    calls: dict[str, list[tuple[str, dict[str, Any]]]] = {"usage": [], "usageagg": []}
    for name, table in (("usage", tables.table("usage")), ("usageagg", tables.table("usageagg"))):
        original = table.query_entities

        def spy(query_filter: str, *, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
            calls[_name].append((query_filter, kwargs.get("parameters", {})))
            return _original(query_filter, **kwargs)

        monkeypatch.setattr(table, "query_entities", spy)
    params = {"group_by": "key", "from": "2026-11-20T00:00:00Z", "to": "2026-11-21T06:00:00Z"}
    assert (await client.get(URL, params=params, headers=H)).status_code == 200
    assert calls["usage"] == []
    [(query, parameters)] = calls["usageagg"]
    assert query == "PartitionKey ge @lo and PartitionKey lt @hi"
    assert (parameters["lo"], parameters["hi"]) == ("2026112000", "2026112106")


BAD_INPUT: list[tuple[dict[str, str], str]] = [
    ({"from": "yesterday"}, "from"),
    ({"to": "2026-13-01"}, "to"),
    ({"from": "2026-11-20T00:00:00+25:00"}, "from"),
    ({"from": "x" * 100}, "from"),
    ({"from": "1999-12-31"}, "from"),
    ({"from": "2025-10-16", "to": "2025-10-18"}, "from"),  # before the 400 days aggregates are kept
    ({"from": "2026-11-20", "to": "2026-11-19"}, "to"),
    ({"from": "2026-11-20", "to": "2026-11-20"}, "to"),
    ({"from": "2026-01-01", "to": "2026-04-04T00:00:01Z"}, "from"),
    ({"granularity": "hour", "from": "2026-11-01", "to": "2026-11-15T00:00:01Z"}, "from"),
    ({"granularity": "week"}, "granularity"),
    ({"group_by": "plan,region"}, "group_by"),
    ({"group_by": "plan,plan"}, "group_by"),
    ({"format": "xlsx"}, "format"),
    ({"team": "x" * 300}, "team"),
    ({"model": "bad\x00"}, "model"),
]


@pytest.mark.parametrize(("params", "param"), BAD_INPUT)
async def test_bad_input(client: httpx.AsyncClient, clock: Clock, params: dict[str, str], param: str) -> None:
    clock.now = NOW
    assert_invalid_request(await client.get(URL, params=params, headers=H), param=param)


async def test_longest_spans_are_accepted(client: httpx.AsyncClient) -> None:
    for params in ({"from": "2026-01-01", "to": "2026-04-04"}, {"granularity": "hour", "from": "2026-11-01",
                                                                "to": "2026-11-15"}):
        assert (await client.get(URL, params=params, headers=H)).status_code == 200


@pytest.mark.parametrize("output", ["json", "csv"])
async def test_refuses_bad_credentials(client: httpx.AsyncClient, output: str) -> None:
    for label, (headers, status) in BAD_CREDENTIALS.items():
        response = await client.get(URL, params={"format": output}, headers=headers)
        assert response.status_code == status, (label, response.text)
        assert response.json()["error"]["type"] == ("authentication_error" if status == 401 else "permission_error")


@pytest.mark.parametrize("table", ["usageagg", "usage"])
async def test_storage_unreachable_is_a_503_not_a_partial_answer(
    client: httpx.AsyncClient, tables: Tables, records: list[UsageRecord], monkeypatch: pytest.MonkeyPatch,
    table: str,
) -> None:
    """The copy's query, or a point read of a usage partition header, fails: no report at all."""

    def down(*args: Any, **kwargs: Any) -> Any:
        raise ServiceRequestError("connection refused")

    monkeypatch.setattr(tables.table(table), "query_entities" if table == "usageagg" else "get_entity", down)
    for output in ("json", "csv"):
        response = await client.get(URL, params={"format": output}, headers=H)
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "storage_unavailable"
