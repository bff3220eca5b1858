"""backfill_usage against real Azurite: raw rows written the old way (no aggregates) get their aggregates,
headers and copy; aggregated partitions are left alone; a second run, or a concurrent one, changes nothing."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from core.tables import Tables
from tests.usage.support import assert_consistent
from tests.usage.test_verify import HOUR, SHARDS, H, records_in
from usage.backfill import backfill_usage
from usage.copy import TABLE as COPY_TABLE
from usage.direct import write_records
from usage.records import UsageRecord
from usage.store import HEADER, UsageStore, partition_key, to_entity
from usage.verify import verify_usage

LEGACY_SHARD = "0ld0ld"


async def write_legacy(tables: Tables, records: list[UsageRecord], shard: str = LEGACY_SHARD) -> None:
    """Bare raw rows, as the writer stored them before aggregates existed."""
    store = UsageStore(tables.table("usage"))
    for start in range(0, len(records), 100):
        await store.commit([to_entity(r, shard) for r in records[start : start + 100]])


async def snapshot(tables: Tables) -> list[tuple[str, str, str, str | None, dict[str, Any]]]:
    rows = []
    for logical in ("usage", COPY_TABLE):
        async for entity in tables.table(logical).list_entities():
            rows.append((logical, entity["PartitionKey"], entity["RowKey"], entity.metadata["etag"], dict(entity)))
    return sorted(rows, key=lambda row: row[:3])


async def has_header(tables: Tables, partition: str) -> bool:
    try:
        await tables.table("usage").get_entity(partition, HEADER)
    except ResourceNotFoundError:
        return False
    return True


async def test_backfills_legacy_partitions_once_and_leaves_the_rest(tables: Tables) -> None:
    legacy = records_in(HOUR, 40) + records_in(HOUR + H, 25, start=200)
    await write_legacy(tables, legacy[::2])
    await write_legacy(tables, legacy[1::2], shard=SHARDS[1])
    await write_records(tables, records_in(HOUR, 10, start=500), shard=SHARDS[0])  # aggregated, copied
    await write_records(tables, records_in(HOUR + H, 6, start=600), shard=SHARDS[0])
    copy = tables.table(COPY_TABLE)
    uncopied = [e async for e in copy.query_entities("PartitionKey eq @h", parameters={"h": f"{HOUR + H:%Y%m%d%H}"})]
    for entity in uncopied:  # aggregated, but its copy was never written
        await copy.delete_entity(entity["PartitionKey"], entity["RowKey"])
    assert not (await verify_usage(tables, HOUR, HOUR + 2 * H)).ok

    ticks: list[tuple[int, int]] = []
    report = await backfill_usage(tables, HOUR, HOUR + 2 * H, progress=lambda done, total: ticks.append((done, total)))
    assert report.summary() == {
        "from": HOUR.isoformat(), "to": (HOUR + 2 * H).isoformat(), "partitions": 6, "backfilled": 4,
        "skipped": 2, "copied": 1, "records": len(legacy),
    }
    assert ticks == [(done, 6) for done in range(7)]
    assert await assert_consistent(tables) == len(legacy) + 16
    assert (await verify_usage(tables, HOUR, HOUR + 2 * H)).ok

    before = await snapshot(tables)
    again = await backfill_usage(tables, HOUR, HOUR + 2 * H)
    assert (again.partitions, again.backfilled, again.skipped, again.copied, again.records) == (6, 0, 6, 0, 0)
    assert await snapshot(tables) == before  # not one row written, not one ETag changed


async def test_more_groups_than_one_transaction_holds(tables: Tables) -> None:
    legacy = [dataclasses.replace(r, team=f"team-{n:03d}") for n, r in enumerate(records_in(HOUR, 230))]
    await write_legacy(tables, legacy)
    report = await backfill_usage(tables, HOUR, HOUR + H)
    assert (report.backfilled, report.records) == (1, 230)
    assert await assert_consistent(tables) == 230


async def test_concurrent_backfills_aggregate_each_partition_once(tables: Tables) -> None:
    legacy = records_in(HOUR, 30) + records_in(HOUR + H, 30, start=100)
    for index, shard in enumerate(("a00001", "a00002", "a00003")):
        await write_legacy(tables, legacy[index::3], shard=shard)
    reports = await asyncio.gather(*(backfill_usage(tables, HOUR, HOUR + 2 * H) for _ in range(3)))
    assert sum(r.backfilled for r in reports) == 6
    assert all(r.backfilled + r.skipped == 6 for r in reports)
    assert sum(r.records for r in reports) == len(legacy)
    assert await assert_consistent(tables) == len(legacy)


async def test_only_the_hours_asked_for(tables: Tables) -> None:
    before, inside, after = HOUR - timedelta(microseconds=1), HOUR + timedelta(minutes=59), HOUR + H
    await write_legacy(tables, [records_in(at, 1, start=n)[0] for n, at in enumerate((before, inside, after))])
    report = await backfill_usage(tables, HOUR, HOUR + H)
    assert (report.partitions, report.backfilled, report.records) == (1, 1, 1)
    assert [await has_header(tables, partition_key(at, LEGACY_SHARD)) for at in (before, inside, after)] == [
        False, True, False,
    ]


async def test_nothing_to_backfill(tables: Tables) -> None:
    report = await backfill_usage(tables, HOUR, HOUR + 3 * H, progress=lambda done, total: None)
    assert (report.partitions, report.backfilled, report.skipped) == (0, 0, 0)
