"""Usage retention against Azurite: expired hours are sealed in the copy, then their rows deleted, in bounded runs;
hours metering has not finished and hours inside the retention are never touched; reports answer the same."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.data.tables.aio import TableClient

import usage.purge
from core.hours import HOUR, floor_hour, parse_hour_key
from core.tables import Tables
from usage.copy import TABLE as COPY
from usage.direct import write_records
from usage.groups import Group, add_counters, count_records, zero
from usage.purge import PurgeReport, purge_usage
from usage.reader import read_aggregates
from usage.records import UsageRecord
from usage.retention import RetentionPolicy
from usage.store import Op, TransactionConflict, UsageStore, split_partition, to_entity

NOW = datetime(2026, 11, 22, 10, 30, tzinfo=UTC)
POLICY = RetentionPolicy(raw_days=3, aggregate_days=10)
RAW_CUTOFF = POLICY.raw_cutoff(NOW)  # 2026-11-19T10
AGGREGATE_CUTOFF = POLICY.aggregate_cutoff(NOW)  # 2026-11-12T10
FINISHED = floor_hour(NOW) - 6 * HOUR  # metering may still recount this hour and later ones
END = floor_hour(NOW) + HOUR
SHARDS = ("a1b2c3", "d4e5f6")

Answer = dict[tuple[datetime, Group], list[int]]


def records_at(hour: datetime, count: int, seed: int) -> list[UsageRecord]:
    rng = random.Random(seed)
    return [
        UsageRecord(
            request_id=f"req-{seed}-{index:04d}", at=hour + timedelta(seconds=rng.randint(0, 3599)),
            team=rng.choice(("team-a", "team-b", "o'neil and co")), key_id=rng.choice(("k1", "k2")),
            plan_id="standard", model_alias=rng.choice(("gpt-4o", "gpt-4o-mini")), endpoint="/v1/chat/completions",
            status=rng.choice((200, 200, 429)), latency_ms=rng.randint(5, 900), prompt_tokens=rng.randint(0, 900),
            completion_tokens=rng.randint(0, 300), plan_tokens=rng.randint(0, 1500), estimated=index % 5 == 0,
            deployment_id=rng.choice((None, "dep-1")),
        )
        for index in range(count)
    ]


async def seed(tables: Tables, hours: list[datetime], per_shard: int = 12) -> None:
    for number, hour in enumerate(hours):
        for shard in SHARDS:
            records = records_at(hour, per_shard, seed=number * 10 + SHARDS.index(shard))
            await write_records(tables, records, shard=shard)


async def keys(table: TableClient) -> set[tuple[str, str]]:
    rows = table.list_entities(select=["PartitionKey", "RowKey"])
    return {(row["PartitionKey"], row["RowKey"]) async for row in rows}


def hour_of(partition: str) -> datetime:
    return parse_hour_key(split_partition(partition)[0])


async def sealed_shard_hours(tables: Tables) -> dict[tuple[str, str], bool]:
    return {
        (row["PartitionKey"], row["RowKey"]): bool(row.get("sealed"))
        async for row in tables.table(COPY).list_entities()
        if "|" not in row["RowKey"]
    }


async def answer(tables: Tables, first: datetime = AGGREGATE_CUTOFF) -> Answer:
    rows, _ = await read_aggregates(tables, first, END)
    return {(row.hour, row.group): list(row.counters) for row in rows}


async def purge(tables: Tables, **options: Any) -> PurgeReport:
    options.setdefault("finished_before", FINISHED)
    return await purge_usage(tables, policy=POLICY, now=NOW, **options)


async def test_expired_hours_are_sealed_then_deleted_and_reports_answer_the_same(tables: Tables) -> None:
    expired = [RAW_CUTOFF - 30 * HOUR, RAW_CUTOFF - HOUR]
    kept = [RAW_CUTOFF, RAW_CUTOFF + 24 * HOUR, floor_hour(NOW) - HOUR]
    await seed(tables, expired + kept)
    before, usage_before = await answer(tables), await keys(tables.table("usage"))

    report = await purge(tables)

    usage_after = await keys(tables.table("usage"))
    assert usage_after == {key for key in usage_before if hour_of(key[0]) >= RAW_CUTOFF}
    assert (report.raw_rows_deleted, report.copy_rows_deleted) == (len(usage_before - usage_after), 0)
    assert (report.hours_sealed, report.shard_hours_sealed, report.stopped_early) == (2, 4, False)
    assert (report.raw_before, report.aggregates_before) == (RAW_CUTOFF, AGGREGATE_CUTOFF)
    sealed = await sealed_shard_hours(tables)
    assert {key for key, is_sealed in sealed.items() if is_sealed} == {
        (f"{hour:%Y%m%d%H}", shard) for hour in expired for shard in SHARDS
    }
    rows, stats = await read_aggregates(tables, AGGREGATE_CUTOFF, END)
    assert {(row.hour, row.group): list(row.counters) for row in rows} == before
    assert (stats.sealed, stats.behind) == (4, 0)
    assert await purge(tables) == PurgeReport(raw_before=RAW_CUTOFF, aggregates_before=AGGREGATE_CUTOFF)


async def test_hours_metering_has_not_finished_are_not_touched(tables: Tables) -> None:
    await seed(tables, [RAW_CUTOFF - 3 * HOUR, RAW_CUTOFF - 2 * HOUR, RAW_CUTOFF - HOUR])
    usage_before, copy_before = await keys(tables.table("usage")), await keys(tables.table(COPY))

    report = await purge(tables, finished_before=None)  # metering never ran
    assert report == PurgeReport() and await keys(tables.table("usage")) == usage_before

    report = await purge(tables, finished_before=RAW_CUTOFF - 2 * HOUR + timedelta(minutes=30))
    assert report.raw_before == RAW_CUTOFF - 2 * HOUR  # an hour metering is inside is not finished
    left = await keys(tables.table("usage"))
    assert {hour_of(pk) for pk, _ in usage_before - left} == {RAW_CUTOFF - 3 * HOUR}
    assert {hour_of(pk) for pk, _ in left} == {RAW_CUTOFF - 2 * HOUR, RAW_CUTOFF - HOUR}
    sealed = await sealed_shard_hours(tables)
    assert {hour for (hour, _), is_sealed in sealed.items() if is_sealed} == {f"{RAW_CUTOFF - 3 * HOUR:%Y%m%d%H}"}
    assert await keys(tables.table(COPY)) == copy_before


async def test_aggregate_retention_deletes_the_copy_of_expired_hours(tables: Tables) -> None:
    ancient, old = [AGGREGATE_CUTOFF - 25 * HOUR, AGGREGATE_CUTOFF - HOUR], [AGGREGATE_CUTOFF, RAW_CUTOFF - HOUR]
    await seed(tables, ancient + old)
    copy_before = await keys(tables.table(COPY))
    before = await answer(tables)

    report = await purge(tables)

    copy_after = await keys(tables.table(COPY))
    assert copy_after == {key for key in copy_before if parse_hour_key(key[0]) >= AGGREGATE_CUTOFF}
    assert report.copy_rows_deleted == len(copy_before - copy_after) > 0
    assert await keys(tables.table("usage")) == set()
    assert await answer(tables, AGGREGATE_CUTOFF - 48 * HOUR) == before  # nothing before the cutoff any more


@pytest.mark.parametrize("page", [1000, 7])
async def test_bounded_runs_resume_where_the_last_one_stopped(
    tables: Tables, page: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(usage.purge, "PAGE", page)
    await seed(tables, [AGGREGATE_CUTOFF - HOUR, RAW_CUTOFF - 5 * HOUR, RAW_CUTOFF - HOUR, RAW_CUTOFF])
    usage_rows, copy_rows = len(await keys(tables.table("usage"))), len(await keys(tables.table(COPY)))
    before = await answer(tables)
    reports: list[PurgeReport] = []
    while not reports or reports[-1].stopped_early:
        reports.append(await purge(tables, max_deletes=37))
        assert reports[-1].raw_rows_deleted + reports[-1].copy_rows_deleted <= 37
        assert await answer(tables) == before  # whichever row a run stopped at
        assert len(reports) < 40
    assert all(report.stopped_at is not None and report.stopped_at < RAW_CUTOFF for report in reports[:-1])
    assert len(reports) > 3
    left = await keys(tables.table("usage"))
    assert {hour_of(pk) for pk, _ in left} == {RAW_CUTOFF}
    assert sum(report.raw_rows_deleted for report in reports) == usage_rows - len(left)
    left_copy = await keys(tables.table(COPY))
    assert sum(report.copy_rows_deleted for report in reports) == copy_rows - len(left_copy)
    assert sum(report.shard_hours_sealed for report in reports) == 3 * len(SHARDS)  # each once, never again


async def test_partitions_without_aggregates_are_counted_before_their_rows_go(tables: Tables) -> None:
    hour = RAW_CUTOFF - 2 * HOUR
    await seed(tables, [hour])
    legacy = records_at(hour, 30, seed=99)  # rows written before aggregates existed: no header, no copy
    await UsageStore(tables.table("usage")).commit([to_entity(record, "01d5ad") for record in legacy])
    expected: Answer = {key: list(counters) for key, counters in (await answer(tables)).items()}
    for group, counters in count_records(legacy).items():
        add_counters(expected.setdefault((hour, group), zero()), counters)

    report = await purge(tables)

    assert await keys(tables.table("usage")) == set()
    assert report.shard_hours_sealed == len(SHARDS) + 1
    assert (await sealed_shard_hours(tables))[(f"{hour:%Y%m%d%H}", "01d5ad")] is True
    assert await answer(tables) == expected


@pytest.mark.parametrize("page", [1000, 7])
async def test_a_dry_run_counts_what_a_run_does_and_writes_nothing(
    tables: Tables, page: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(usage.purge, "PAGE", page)
    hours = [AGGREGATE_CUTOFF - HOUR, RAW_CUTOFF - 5 * HOUR, RAW_CUTOFF - HOUR, RAW_CUTOFF]
    await seed(tables, hours)
    legacy = records_at(RAW_CUTOFF - HOUR, 5, seed=77)
    await UsageStore(tables.table("usage")).commit([to_entity(record, "01d5ad") for record in legacy])
    snapshot = await everything(tables)

    for budget in (50, 10_000):
        dry = await purge(tables, max_deletes=budget, dry_run=True)
        assert await everything(tables) == snapshot
        assert dry.dry_run and dry.raw_rows_deleted > 0
        real = await purge(tables, max_deletes=budget)
        assert {**vars(dry), "dry_run": False} == vars(real)
        snapshot = await everything(tables)


async def everything(tables: Tables) -> list[dict[str, Any]]:
    """Every row of both tables with its ETag: a rewrite with the same values shows too."""
    tables_rows = [tables.table(logical).list_entities() for logical in ("usage", COPY)]
    return [{**row, "etag": row.metadata["etag"]} for rows in tables_rows async for row in rows]


@pytest.mark.parametrize("use_sdk", [False, True])
async def test_delete_transactions_through_either_encoder(tables: Tables, use_sdk: bool) -> None:
    store = UsageStore(tables.table("usage"), use_sdk=use_sdk)
    rows = [{"PartitionKey": "2026010100-a1b2c3", "RowKey": key, "n": 1} for key in ("0001-x", "~a|o'neil|~", "~h")]
    await store.commit(rows)
    await store.apply([Op("delete", {"PartitionKey": r["PartitionKey"], "RowKey": r["RowKey"]}) for r in rows[:2]])
    assert await keys(tables.table("usage")) == {("2026010100-a1b2c3", "~h")}
    with pytest.raises(TransactionConflict):  # a row that is gone fails the whole transaction
        await store.apply([Op("delete", row) for row in rows])
    assert await keys(tables.table("usage")) == {("2026010100-a1b2c3", "~h")}

