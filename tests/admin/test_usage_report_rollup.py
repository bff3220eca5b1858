"""GET /api/admin/usage over the hourly roll-up: the same JSON and CSV as the raw scan, from far fewer rows."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from core.hours import HOUR
from core.tables import Tables
from metering.usage_hours import UsageHours
from metering.usage_rollup import rollup_usage
from tests.admin.test_usage_report import CASES, URL, H, expected, totals
from tests.admin.usage_seed import NOW, write
from usage.records import UsageRecord

# After the two runs below, hours [FINAL_FROM, FINAL_BEFORE) are final in the roll-up; the seeded records
# span 2026-11-12 16:00 to NOW (2026-11-22 10:30), so both ends stay raw.
FINAL_FROM = datetime(2026, 11, 14, tzinfo=UTC)
FINAL_BEFORE = datetime(2026, 11, 22, 5, tzinfo=UTC)
BOUNDS = [
    (datetime(2026, 11, 13, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC)),  # aligned: every record
    (datetime(2026, 11, 13, 5, 17, 3, tzinfo=UTC), datetime(2026, 11, 21, 13, 0, 1, tzinfo=UTC)),
    (datetime(2026, 11, 14, 0, 0, 0, 500_000, tzinfo=UTC), NOW),  # starts inside a final hour
    (datetime(2026, 11, 17, 5, 30, tzinfo=UTC), datetime(2026, 11, 17, 6, 45, tzinfo=UTC)),  # no whole hour
]


async def roll_up(tables: Tables) -> None:
    await rollup_usage(tables, now=datetime(2026, 11, 16, 0, 30, tzinfo=UTC), recount_hours=6)  # the first run
    await rollup_usage(tables, now=NOW, recount_hours=6)
    assert await UsageHours(tables).final_hours(FINAL_FROM - 48 * HOUR, NOW) == {
        FINAL_FROM + i * HOUR for i in range(int((FINAL_BEFORE - FINAL_FROM) / HOUR))
    }


def queries(params: dict[str, str], start: datetime, end: datetime) -> dict[str, str]:
    if params.get("granularity") == "hour":
        end = min(end, start + timedelta(days=14))
    return {**params, "from": start.isoformat(), "to": end.isoformat()}


async def fetch(client: httpx.AsyncClient, query: dict[str, str]) -> tuple[dict[str, Any], str]:
    body = await client.get(URL, params=query, headers=H)
    csv = await client.get(URL, params={**query, "format": "csv"}, headers=H)
    assert body.status_code == csv.status_code == 200, body.text
    return body.json(), csv.text


async def test_rolled_up_hours_give_the_raw_scan_result(
    client: httpx.AsyncClient, tables: Tables, records: list[UsageRecord]
) -> None:
    combos = [(params, reference, queries(params, *bounds)) for params, reference in CASES for bounds in BOUNDS]
    raw = [await fetch(client, query) for _, _, query in combos]
    await roll_up(tables)
    for (_, reference, query), (raw_body, raw_csv) in zip(combos, raw, strict=True):
        body, csv = await fetch(client, query)
        assert body == raw_body and csv == raw_csv, query
        start, end = datetime.fromisoformat(body["from"]), datetime.fromisoformat(body["to"])
        want = expected(records, start, end, **reference)
        assert body["data"] == want and body["totals"] == totals(want)


async def test_only_final_whole_hours_come_from_the_rollup(
    client: httpx.AsyncClient, tables: Tables, records: list[UsageRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    await roll_up(tables)
    calls: dict[str, list[dict[str, Any]]] = {"usage": [], "usagehours": []}
    for logical, seen in calls.items():
        table = tables.table(logical)

        def spy(query_filter: str, original: Any = table.query_entities, seen: Any = seen, **kwargs: Any) -> Any:
            seen.append(kwargs.get("parameters", {}))
            return original(query_filter, **kwargs)

        monkeypatch.setattr(table, "query_entities", spy)
    start, end = BOUNDS[2]
    body, _ = await fetch(client, queries({"group_by": "team,key"}, start, end))
    assert body["data"] == expected(records, start, end, group_by=("team", "key"))
    raw_ranges = {(p["lo"], p["hi"]) for p in calls["usage"]}
    assert raw_ranges == {("2026111400-", "2026111401-"), ("2026112205-", "2026112211-")}  # the partial and recent
    assert ("2026111401", "2026112205") in {(p.get("lo"), p.get("hi")) for p in calls["usagehours"]}


async def test_hours_still_recounted_are_read_raw(
    client: httpx.AsyncClient, tables: Tables, records: list[UsageRecord]
) -> None:
    await roll_up(tables)
    late = dataclasses.replace(records[0], request_id="late", at=FINAL_BEFORE + timedelta(minutes=7), team="late")
    too_late = dataclasses.replace(records[0], request_id="too-late", at=FINAL_BEFORE - HOUR, team="too-late")
    await write(tables, [late, too_late])
    query = {"group_by": "team", "granularity": "hour", "from": "2026-11-21T00:00:00Z", "to": NOW.isoformat()}
    teams = {row["team"] for row in (await client.get(URL, params=query, headers=H)).json()["data"]}
    # A record arriving after its hour was counted for the last time reaches raw usage, not the report.
    assert "late" in teams and "too-late" not in teams
