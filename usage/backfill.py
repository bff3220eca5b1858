"""Backfill usage aggregates for raw rows written before aggregates existed (partitions without a header).

For each usage partition of the whole UTC hours [first, end) holding raw rows:
- its copy in `usageagg` exists: left alone (a copy is only ever written from a partition with a header);
- it has a header: only its copy is written, from its aggregate rows;
- it has none: its raw rows are recounted, its aggregate rows written (replace) and its header inserted, the
  header in the same transaction as the last aggregate rows, so a partition with up to 99 groups is
  aggregated atomically; if the header exists by then (another backfill, or a writer replaying an old
  journal, got there first) nothing of that transaction applies and the partition is skipped. Then its copy.
Idempotent: a second run reads one copy row per partition and writes nothing.

Cost: finding the partitions is one small query per partition (each returns one row: a skip-scan, not the
records); a partition to backfill is recounted (its rows) and written in ceil((groups + 1) / 100)
transactions plus its copy; an aggregated partition without a copy, its aggregate rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables.aio import TableClient

from core.tables import Tables, storage_errors
from usage.committer import TRANSACTION_MAX
from usage.copy import AggregateCopy
from usage.partition import PartitionState, aggregate_entity, header_entity, load_state
from usage.store import RAW_ROWS, Op, TransactionConflict, UsageStore, partition_range, split_partition
from usage.verify import whole_hours

Progress = Callable[[int, int], None]  # (partitions done, partitions in all)

log = logging.getLogger(__name__)


@dataclass
class BackfillReport:
    first: datetime
    end: datetime
    partitions: int = 0  # usage partitions of the hours holding raw rows
    backfilled: int = 0  # aggregated by this run
    skipped: int = 0  # already aggregated (by a writer, an earlier run, or a concurrent one)
    copied: int = 0  # already aggregated, but their missing copy was written by this run
    records: int = 0  # raw rows counted in the partitions this run aggregated

    def summary(self) -> dict[str, Any]:
        return {
            "from": self.first.isoformat(), "to": self.end.isoformat(), "partitions": self.partitions,
            "backfilled": self.backfilled, "skipped": self.skipped, "copied": self.copied, "records": self.records,
        }


async def backfill_usage(
    tables: Tables, first: datetime, end: datetime, *, progress: Progress | None = None
) -> BackfillReport:
    """Aggregate every partition of the hours [first, end) that has none; raises StorageUnavailable."""
    first, end = whole_hours(first, end)
    store = UsageStore(tables.table("usage"))
    copy = AggregateCopy(tables)
    partitions = await usage_partitions(store.client, first, end)
    report = BackfillReport(first, end, partitions=len(partitions))
    if progress is not None:
        progress(0, len(partitions))
    for done, partition in enumerate(partitions, start=1):
        await _backfill(store, copy, partition, report)
        if progress is not None:
            progress(done, len(partitions))
    return report


async def usage_partitions(usage: TableClient, first: datetime, end: datetime) -> list[str]:
    """The usage partitions of the hours that hold raw rows, in key order."""
    lo, hi = partition_range(first, end)
    found: list[str] = []
    bound = "ge"
    while (partition := await _first_partition(usage, bound, lo, hi)) is not None:
        found.append(partition)
        lo, bound = partition, "gt"
    return found


async def _first_partition(usage: TableClient, bound: str, lo: str, hi: str) -> str | None:
    query = f"PartitionKey {bound} @lo and PartitionKey lt @hi and {RAW_ROWS}"
    params = {"lo": lo, "hi": hi}
    with storage_errors():
        try:
            rows = usage.query_entities(query, parameters=params, select=["PartitionKey"], results_per_page=1)
            async for row in rows:
                return str(row["PartitionKey"])
        except ResourceNotFoundError:  # no usage table: no partitions
            return None
    return None


async def _backfill(store: UsageStore, copy: AggregateCopy, partition: str, report: BackfillReport) -> None:
    hour, shard = split_partition(partition)
    if await _copied(copy, hour, shard):
        report.skipped += 1
        return
    state = await load_state(store.client, partition)  # recounts the raw rows when there is no header
    if state.etag is not None:
        report.skipped += 1
        report.copied += 1
    elif not state.counts or not await _aggregate(store, state):
        report.skipped += 1
        return
    else:
        report.backfilled += 1
        report.records += state.requests
    await copy.write_state(state)


async def _copied(copy: AggregateCopy, hour: str, shard: str) -> bool:
    """The copy of the shard-hour was written (registered alone means its writer never copied it)."""
    with storage_errors():
        try:
            header = await copy.table.get_entity(hour, shard)
        except ResourceNotFoundError:
            return False
    return "version" in header


async def _aggregate(store: UsageStore, state: PartitionState) -> bool:
    """Write the recounted state's aggregate rows and insert its header; False if the header exists."""
    state.version = 1
    rows = [Op("replace", aggregate_entity(state.partition, g, c)) for g, c in state.counts.items()]
    ops = [*rows, Op("insert", header_entity(state.partition, state.version, state.requests))]
    chunks = [ops[start : start + TRANSACTION_MAX] for start in range(0, len(ops), TRANSACTION_MAX)]
    for chunk in chunks[:-1]:
        await store.apply(chunk)
    try:
        await store.apply(chunks[-1])
    except TransactionConflict:
        if len(chunks) > 1:  # the earlier rows went unguarded: whoever won may have been overwritten
            log.warning("Usage partition %s was aggregated concurrently: run verify on its hour.", state.partition)
        return False
    return True
