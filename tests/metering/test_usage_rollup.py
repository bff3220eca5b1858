"""The hourly usage roll-up: exact sums, idempotence, late records, the watermark, the CLI."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.hours import HOUR, floor_hour, hour_key
from core.settings import Settings
from core.tables import Tables, int_value
from metering.__main__ import main
from metering.usage_hours import COUNTERS, GROUP_COLUMNS, RESERVED, RollupState, UsageHours
from metering.usage_rollup import FIRST_RUN_HOURS, rollup_usage, run_usage_rollup
from usage.records import UsageRecord
from usage.store import UsageStore, batches, to_entity

NOW = datetime(2026, 3, 10, 10, 30, tzinfo=UTC)
LAST = datetime(2026, 3, 10, 9, tzinfo=UTC)  # the last completed hour at NOW
SHARDS = ("a1b2c3", "d4e5f6", "0789ab")
BIG = 2**31 - 1  # two of these in one group overflow an Int32


def record(index: int, at: datetime, rng: random.Random, **changes: Any) -> UsageRecord:
    prompt, completion = rng.randint(0, 4_000), rng.randint(0, 1_000)
    base = UsageRecord(
        request_id=f"r{index:05d}", at=at, team=rng.choice(("team-a", "team|b", "é team")),
        key_id=rng.choice(("k1", "k2")), plan_id=rng.choice(("starter", "standard")),
        model_alias=rng.choice(("gpt-4o", "gpt-4o-mini")), endpoint="/v1/chat/completions",
        status=rng.choice((200, 200, 400, 429, 503)), latency_ms=10, prompt_tokens=prompt,
        cached_tokens=rng.randint(0, prompt), completion_tokens=completion, total_tokens=prompt + completion,
        plan_tokens=prompt + 3 * completion, estimated=rng.random() < 0.2,
        deployment_id=rng.choice((None, "dep-1", "dep-2")),
    )
    return dataclasses.replace(base, **changes)


def seed() -> list[UsageRecord]:
    rng = random.Random(7)
    times = [LAST - h * HOUR + timedelta(minutes=rng.randint(0, 59), seconds=rng.randint(0, 59)) for h in range(8)
             for _ in range(6)]
    times += [LAST, LAST + timedelta(minutes=59, seconds=59, microseconds=999_999)]  # the hour's bounds
    times += [NOW, LAST - FIRST_RUN_HOURS * HOUR + timedelta(minutes=59)]  # not ended; before the first run
    records = [record(i, at, rng) for i, at in enumerate(times)]
    big = {"team": "whale", "key_id": "k9", "plan_id": "standard", "model_alias": "gpt-4o", "deployment_id": None,
           "prompt_tokens": BIG, "total_tokens": BIG, "plan_tokens": BIG, "status": 200, "estimated": False}
    return [*records, *(record(900 + i, LAST - 2 * HOUR, rng, **big) for i in range(2))]


async def write(tables: Tables, records: list[UsageRecord]) -> None:
    entities = [to_entity(r, SHARDS[i % len(SHARDS)]) for i, r in enumerate(records)]
    for batch in batches(entities, 100):
        await UsageStore(tables.table("usage")).commit(batch)


Rows = dict[tuple[str, tuple[Any, ...]], list[int]]  # (hour key, group) -> counters


def expected(records: list[UsageRecord], first: datetime, last: datetime) -> Rows:
    sums: Rows = defaultdict(lambda: [0] * len(COUNTERS))
    for r in records:
        hour = floor_hour(r.at)
        if first <= hour <= last:
            row = sums[(hour_key(hour), tuple(getattr(r, c) for c in GROUP_COLUMNS))]
            values = (1, r.status >= 400, r.prompt_tokens, r.cached_tokens, r.completion_tokens, r.total_tokens,
                      r.plan_tokens, r.estimated)
            for index, value in enumerate(values):
                row[index] += int(value)
    return dict(sums)


async def stored(tables: Tables) -> Rows:
    rows: Rows = {}
    async for e in tables.table("usagehours").list_entities():
        if e["PartitionKey"] != RESERVED:
            assert set(e) <= {"PartitionKey", "RowKey", *GROUP_COLUMNS, *COUNTERS}  # metadata only
            key = (e["PartitionKey"], tuple(e.get(c) for c in GROUP_COLUMNS))
            assert key not in rows
            rows[key] = [int_value(e[c]) for c in COUNTERS]
    return rows


async def roll(tables: Tables, now: datetime = NOW, **options: Any) -> Any:
    return await rollup_usage(tables, now=now, recount_hours=options.pop("recount_hours", 6), **options)


async def test_sums_are_exact_per_hour_and_group(tables: Tables) -> None:
    records = seed()
    await write(tables, records)
    report = await roll(tables)
    first = LAST - (FIRST_RUN_HOURS - 1) * HOUR
    want = expected(records, first, LAST)
    assert await stored(tables) == want
    assert len({key[0] for key in want}) == 8 and any(key[1][1] is None for key in want)
    assert want[(hour_key(LAST - 2 * HOUR), ("whale", None, "standard", "gpt-4o", "k9"))][2] == 2 * BIG
    assert report.hours == [first + i * HOUR for i in range(FIRST_RUN_HOURS)]
    assert report.requests == sum(counters[0] for counters in want.values()) == len(records) - 2
    assert report.state == RollupState(hour=LAST, final_before=LAST - 4 * HOUR)
    rolled_at = await UsageHours(tables).rolled_at(LAST)
    assert rolled_at is not None and rolled_at == NOW
    assert await UsageHours(tables).rolled_at(LAST + HOUR) is None  # the current hour is not rolled


async def test_a_rerun_and_concurrent_runs_give_the_same_rows(tables: Tables) -> None:
    records = seed()
    await write(tables, records)
    await roll(tables)
    once = await stored(tables)
    await roll(tables)
    assert await stored(tables) == once
    await asyncio.gather(roll(tables), roll(tables), roll(tables, now=NOW + timedelta(minutes=10)))
    assert await stored(tables) == once
    assert await UsageHours(tables).state() == RollupState(hour=LAST, final_before=LAST - 4 * HOUR)


async def test_late_records_are_counted_while_their_hour_is_in_the_recount_window(tables: Tables) -> None:
    rng = random.Random(3)
    await write(tables, [record(1, LAST - 3 * HOUR, rng)])
    await roll(tables)
    late = record(2, LAST - 3 * HOUR + timedelta(minutes=5), rng, team="late-team")
    too_late = record(3, LAST - 5 * HOUR, rng, team="too-late")  # its hour was counted for the last time
    await write(tables, [late, too_late])
    report = await roll(tables, now=NOW + HOUR)
    assert report.hours == [LAST - 4 * HOUR + i * HOUR for i in range(6)]  # from the first hour not final
    groups = {key[1][0] for key in await stored(tables)}
    assert "late-team" in groups and "too-late" not in groups
    assert report.state == RollupState(hour=LAST + HOUR, final_before=LAST - 3 * HOUR)


async def test_the_watermark_moves_over_completed_hours_only_and_never_back(tables: Tables) -> None:
    rolled = await roll(tables, now=LAST + timedelta(minutes=59, seconds=59))  # 09:59:59: 08:00 is the last
    assert rolled.hours[-1] == LAST - HOUR and len(rolled.hours) == FIRST_RUN_HOURS
    again = await roll(tables, now=LAST + timedelta(hours=1))
    assert again.hours[0] == LAST - 5 * HOUR and again.hours[-1] == LAST
    with pytest.raises(ValueError, match="has not ended"):
        await roll(tables, through=LAST + HOUR)
    old = await roll(tables, through=LAST - 30 * HOUR)  # by hand: recounts that window, moves nothing
    assert old.hours == [LAST - 35 * HOUR + i * HOUR for i in range(6)]
    assert await UsageHours(tables).state() == RollupState(hour=LAST, final_before=LAST - 4 * HOUR)
    wide = await roll(tables, now=NOW + 20 * HOUR, recount_hours=2)  # catches up from the first hour not final
    assert wide.hours[0] == LAST - 4 * HOUR and wide.state == RollupState(LAST + 20 * HOUR, LAST + 20 * HOUR)


async def test_a_run_cut_short_keeps_the_hours_it_finished(tables: Tables, monkeypatch: pytest.MonkeyPatch) -> None:
    from metering import usage_rollup

    original, counted = usage_rollup.count_hour, []

    async def failing(usage: Any, hour: datetime) -> Any:
        if len(counted) == 10:
            raise RuntimeError("cut short")
        counted.append(hour)
        return await original(usage, hour)

    monkeypatch.setattr(usage_rollup, "count_hour", failing)
    with pytest.raises(RuntimeError):
        await roll(tables)
    first = LAST - (FIRST_RUN_HOURS - 1) * HOUR
    assert await UsageHours(tables).state() == RollupState(hour=first + 9 * HOUR, final_before=first + 10 * HOUR)
    monkeypatch.setattr(usage_rollup, "count_hour", original)
    assert (await roll(tables)).hours[0] == first + 10 * HOUR


async def test_the_cli_rolls_up(
    make_settings: Callable[..., Settings], tables: Tables, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = make_settings()
    monkeypatch.setenv("LIUTONG_STORAGE_CONNECTION_STRING", settings.storage_connection_string.get_secret_value())
    monkeypatch.setenv("LIUTONG_TABLE_PREFIX", settings.table_prefix)
    last = floor_hour(datetime.now(UTC)) - HOUR
    rng = random.Random(1)
    await write(tables, [record(i, last - hours * HOUR, rng) for i, hours in enumerate((0, 10, 60))])
    assert await asyncio.to_thread(main, ["rollup-usage"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["hours"], summary["requests"], summary["last"]) == (FIRST_RUN_HOURS, 2, last.isoformat())
    assert await asyncio.to_thread(main, ["rollup-usage", "--hour", f"{last - 10 * HOUR:%Y-%m-%dT%H}"]) == 0
    assert json.loads(capsys.readouterr().out)["requests"] == 1
    assert await asyncio.to_thread(main, ["rollup-usage", "--since", f"{last - 60 * HOUR:%Y-%m-%dT%H}"]) == 0
    backfill = json.loads(capsys.readouterr().out)
    assert (backfill["hours"], backfill["requests"], backfill["first"]) == (61, 3, (last - 60 * HOUR).isoformat())
    assert await UsageHours(tables).rolled_at(last - 60 * HOUR) is not None
    assert await asyncio.to_thread(main, ["rollup-usage", "--hour", f"{last + HOUR:%Y-%m-%dT%H}"]) == 2
    with pytest.raises(SystemExit) as bad:
        main(["rollup-usage", "--hour", "yesterday"])
    assert bad.value.code == 2
    unreachable = "AccountName=devstoreaccount1;AccountKey=a2V5;TableEndpoint=http://127.0.0.1:9/devstoreaccount1;"
    monkeypatch.setenv("LIUTONG_STORAGE_CONNECTION_STRING", f"DefaultEndpointsProtocol=http;{unreachable}")
    assert await asyncio.to_thread(main, ["rollup-usage"]) == 4


async def test_run_usage_rollup_uses_the_recount_setting(
    make_settings: Callable[..., Settings], tables: Tables
) -> None:
    settings = make_settings(usage_rollup_recount_hours=3)
    report = await run_usage_rollup(settings, clock=lambda: NOW)
    assert report.state == RollupState(hour=LAST, final_before=LAST - HOUR)
