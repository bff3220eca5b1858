"""verify_usage against real Azurite: a recount of raw rows compared with the partitions' aggregates and headers
and with the copy, and every way they can differ reported once, where it is."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from azure.data.tables import UpdateMode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.settings import Settings
from core.tables import Tables, int64
from tests.usage.support import create_usage_tables
from usage.copy import TABLE as COPY_TABLE
from usage.copy import AggregateCopy
from usage.direct import write_records
from usage.groups import COUNTERS, Group, group_key, group_of
from usage.records import UsageRecord
from usage.store import AGGREGATE_PREFIX, HEADER, UsageStore, partition_key, row_key, to_entity
from usage.verify import NOT_AGGREGATED, Difference, verify_usage

HOUR = datetime(2031, 3, 4, 5, tzinfo=UTC)
H = timedelta(hours=1)
SHARDS = ("aa11bb", "cc22dd")


def record(number: int, at: datetime, **overrides: Any) -> UsageRecord:
    values: dict[str, Any] = {
        "request_id": f"req-{number:05d}", "at": at, "team": ("team-a", "team-b")[number % 2], "key_id": "k1",
        "plan_id": "starter", "model_alias": ("gpt-4o", "gpt-4o-mini")[number % 3 == 0], "endpoint": "/v1/embeddings",
        "status": 500 if number % 5 == 0 else 200, "latency_ms": 3, "prompt_tokens": number, "cached_tokens": 1,
        "completion_tokens": 2 * number, "total_tokens": 3 * number, "plan_tokens": 4 * number,
        "estimated": number % 4 == 0, "deployment_id": None if number % 6 == 0 else "dep-1",
        "reasoning_tokens": number % 3, "auto": number % 7 == 0, "byok": number % 5 == 1,
        "unit": (None, "image", "audio_second", "character")[number % 4], "quantity": number % 4 and number,
    }
    values.update(overrides)
    return UsageRecord(**values)


def records_in(hour: datetime, count: int, start: int = 0) -> list[UsageRecord]:
    return [record(start + n, hour + timedelta(seconds=37 * n % 3600)) for n in range(count)]


async def seed(tables: Tables) -> list[UsageRecord]:
    """Two hours of two shards, written with their aggregates and copy; one record on each side of the range."""
    inside = records_in(HOUR, 30) + records_in(HOUR + H, 20, start=100)
    outside = [record(900, HOUR - timedelta(microseconds=1)), record(901, HOUR + 2 * H)]
    for index, shard in enumerate(SHARDS):
        await write_records(tables, inside[index::2] + outside[index::2], shard=shard)
    return inside


async def merge(tables: Tables, table: str, partition: str, row: str, **values: Any) -> None:
    entity = {"PartitionKey": partition, "RowKey": row, **{name: int64(v) for name, v in values.items()}}
    await tables.table(table).upsert_entity(entity, mode=UpdateMode.MERGE)


async def corrupt_copy(tables: Tables, hour: str, shard: str, group: Group, counter: str, value: int) -> None:
    """Rewrite one counter in the shard-hour's copy, keeping everything else as it was."""
    copy = AggregateCopy(tables)
    copied = (await copy.read(hour, hour + "~"))[(hour, shard)]
    copied.counts[group][COUNTERS.index(counter)] = value
    await copy.write(hour, shard, copied.counts, version=copied.version, requests=copied.requests)


def counter_of(records: list[UsageRecord], group: Group, name: str) -> int:
    mine = [r for r in records if group_of(r) == group]
    if name == "requests":
        return len(mine)
    if name == "errors":
        return sum(r.status >= 400 for r in mine)
    if name == "estimated_requests":
        return sum(r.estimated for r in mine)
    if name == "auto_requests":
        return sum(r.auto for r in mine)
    if name == "byok_requests":
        return sum(r.byok for r in mine)
    units = {"images": "image", "audio_seconds": "audio_second", "characters": "character"}
    if name in units:
        return sum(r.quantity for r in mine if r.unit == units[name])
    return sum(getattr(r, name) for r in mine)


async def test_consistent_aggregates_verify_clean(tables: Tables) -> None:
    inside = await seed(tables)
    report = await verify_usage(tables, HOUR, HOUR + 2 * H)
    assert report.ok and report.differences == []
    assert (report.hours, report.partitions, report.records, report.sealed) == (2, 4, len(inside), 0)
    summary = json.loads(json.dumps(report.summary()))
    assert summary == {
        "from": HOUR.isoformat(), "to": (HOUR + 2 * H).isoformat(), "hours": 2, "partitions": 4,
        "records": 50, "sealed": 0, "differences": 0, "ok": True,
    }
    assert (await verify_usage(tables, HOUR + 5 * H, HOUR + 6 * H)).summary()["partitions"] == 0


async def test_a_corrupted_aggregate_row_is_one_difference(tables: Tables) -> None:
    inside = await seed(tables)
    shard_records = inside[0:30:2]
    group = group_of(shard_records[0])
    true = counter_of(shard_records, group, "prompt_tokens")
    partition = partition_key(HOUR, SHARDS[0])
    await merge(tables, "usage", partition, AGGREGATE_PREFIX + group_key(group), prompt_tokens=true + 7)
    report = await verify_usage(tables, HOUR, HOUR + H)
    assert not report.ok
    assert report.differences == [Difference(HOUR, SHARDS[0], group, "partition", "prompt_tokens", true, true + 7)]
    view = report.differences[0].view()
    assert view["group"]["team"] == group[0] and view["problem"] == "differs" and view["source"] == "partition"
    assert report.summary()["differences"] == 1


async def test_header_and_copy_differences_name_their_source(tables: Tables) -> None:
    inside = await seed(tables)
    second_hour = inside[31:50:2]  # the second shard's records of the second hour
    group = group_of(second_hour[0])
    partition = partition_key(HOUR + H, SHARDS[1])
    await merge(tables, "usage", partition, HEADER, requests=999)
    await corrupt_copy(tables, f"{HOUR + H:%Y%m%d%H}", SHARDS[1], group, "errors", 50)
    report = await verify_usage(tables, HOUR, HOUR + 2 * H)
    assert [(d.hour, d.shard, d.source, d.group, d.counter, d.stored) for d in report.differences] == [
        (HOUR + H, SHARDS[1], "header", None, "requests", 999),
        (HOUR + H, SHARDS[1], "copy", group, "errors", 50),
    ]
    assert report.differences[0].raw == len(second_hour)
    assert report.differences[1].raw == counter_of(second_hour, group, "errors")


async def test_a_raw_row_deleted_under_its_aggregates_shows_everywhere(tables: Tables) -> None:
    inside = await seed(tables)
    gone = inside[0]
    await tables.table("usage").delete_entity(partition_key(gone.at, SHARDS[0]), row_key(gone))
    report = await verify_usage(tables, HOUR, HOUR + H)
    assert report.records == 29
    sources = {(d.source, d.counter) for d in report.differences}
    assert ("header", "requests") in sources and ("partition", "requests") in sources
    assert ("copy", "requests") in sources
    assert all(d.stored is not None and d.raw < d.stored for d in report.differences if d.counter == "requests")


async def test_rows_written_before_aggregates_existed_are_not_aggregated(tables: Tables) -> None:
    legacy = records_in(HOUR, 12)
    await UsageStore(tables.table("usage")).commit([to_entity(r, SHARDS[0]) for r in legacy])
    report = await verify_usage(tables, HOUR, HOUR + H)
    assert [(d.source, d.group, d.raw, d.stored, d.problem) for d in report.differences] == [
        ("header", None, 12, None, NOT_AGGREGATED),
        ("copy", None, 12, None, NOT_AGGREGATED),
    ]
    assert report.differences[1].view()["problem"] == "not aggregated: run backfill"


async def test_sealed_shard_hours_are_not_compared(tables: Tables) -> None:
    await seed(tables)
    await tables.table(COPY_TABLE).upsert_entity(
        {"PartitionKey": f"{HOUR:%Y%m%d%H}", "RowKey": SHARDS[0], "sealed": True}, mode=UpdateMode.MERGE
    )
    await merge(tables, "usage", partition_key(HOUR, SHARDS[0]), HEADER, requests=1)
    report = await verify_usage(tables, HOUR, HOUR + H)
    assert report.ok and report.sealed == 1


async def test_hours_in_any_offset_are_utc_hours(tables: Tables) -> None:
    inside = await seed(tables)
    offset = timezone(timedelta(hours=8))
    report = await verify_usage(tables, HOUR.astimezone(offset), (HOUR + 2 * H).astimezone(offset))
    assert (report.first, report.records, report.ok) == (HOUR, len(inside), True)


@pytest.mark.parametrize(
    ("first", "end"),
    [(HOUR, HOUR), (HOUR + H, HOUR), (HOUR + timedelta(minutes=1), HOUR + H), (HOUR.replace(tzinfo=None), HOUR + H)],
)
async def test_refuses_anything_but_whole_hours(tables: Tables, first: datetime, end: datetime) -> None:
    with pytest.raises(ValueError):
        await verify_usage(tables, first, end)


async def check_any_one_corruption(
    make_settings: Callable[..., Settings], shape: list[tuple[int, int]], pick: int, counter: int, delta: int
) -> None:
    config = make_settings(table_prefix="v" + secrets.token_hex(6))
    tables = Tables(config)
    try:
        await create_usage_tables(tables, config)
        written = [dataclasses.replace(record(n, HOUR + timedelta(seconds=n)), team=f"t{team}", status=status)
                   for n, (team, status) in enumerate(shape)]
        await write_records(tables, written, shard=SHARDS[0])
        report = await verify_usage(tables, HOUR, HOUR + H)
        assert report.ok and report.records == len(written)
        group = group_of(written[pick % len(written)])
        name = COUNTERS[counter]
        true = counter_of(written, group, name)
        await merge(tables, "usage", partition_key(HOUR, SHARDS[0]), AGGREGATE_PREFIX + group_key(group),
                    **{name: true + delta})
        report = await verify_usage(tables, HOUR, HOUR + H)
        assert report.differences == [Difference(HOUR, SHARDS[0], group, "partition", name, true, true + delta)]
    finally:
        await tables.close()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    shape=st.lists(st.tuples(st.integers(0, 3), st.sampled_from([200, 429, 500])), min_size=1, max_size=30),
    pick=st.integers(0, 29), counter=st.integers(0, len(COUNTERS) - 1),
    delta=st.integers(-5, 5).filter(bool),
)
def test_any_one_corrupted_counter_is_found_exactly(
    make_settings: Callable[..., Settings], shape: list[tuple[int, int]], pick: int, counter: int, delta: int
) -> None:
    asyncio.run(check_any_one_corruption(make_settings, shape, pick, counter, delta))
