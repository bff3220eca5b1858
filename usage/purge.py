"""Usage retention: raw rows of expired hours, then expired hours of the aggregate copy, deleted oldest first.

An hour's raw rows go once it is before both the raw cutoff (usage.retention) and `finished_before`, the first
hour metering may still recount; its copy rows once it is also before the aggregate cutoff. Nothing is deleted
while metering has never run (`finished_before` None).

Before the first row of a usage partition is deleted, its shard-hour in the copy (usage.copy) is rewritten from
the partition's own aggregates (usage.partition.load_state) and sealed: readers then trust the copy without
asking the partition, so reports answer the same before and after. A partition the copy does not know holds rows
written before aggregates existed: it is recounted and sealed the same way, so nothing counted is
lost. A sealed shard-hour is never rewritten again: its partition may already be partly deleted.

Rows are found by key only (PartitionKey and RowKey): the first page of the hour's range, deleted in
transactions of at most 100 rows of one partition, then the range is queried afresh (no continuation token
outlives the rows it pointed past). A run stops after `max_deletes` deletions and says in which hour; the next
run picks up there, since an hour is done only once its range is empty. A dry run writes nothing and counts
what a run would seal and delete.

Cost of a run: the rows it deletes, at most `max_deletes` (raw rows grow with requests, copy rows with shards x
groups per hour); per hour reached, one query to find it and one read of its copy rows (shards x groups); per
shard-hour sealed, one read of its partition's aggregate rows (groups), and for a partition without aggregates
a recount of its raw rows (requests).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableEntity
from azure.data.tables.aio import TableClient

from core.hours import HOUR, floor_hour, hour_key, parse_hour_key
from core.tables import Tables, rows_of, storage_errors
from usage.committer import TRANSACTION_MAX
from usage.copy import AggregateCopy
from usage.partition import load_state
from usage.retention import RetentionPolicy
from usage.store import Op, TransactionConflict, UsageStore, batches, partition_range, split_partition

DEFAULT_MAX_DELETES = 200_000
PAGE = 1000  # the most rows one Table query page returns

Key = tuple[str, str]  # (PartitionKey, RowKey)

log = logging.getLogger(__name__)


@dataclass
class PurgeReport:
    """What a run did (a dry run: what it would do)."""

    dry_run: bool = False
    raw_before: datetime | None = None  # raw rows of the hours before this one are deleted; None: none are
    aggregates_before: datetime | None = None  # the same for the copy
    hours_sealed: int = 0  # hours in which this run sealed shard-hours
    shard_hours_sealed: int = 0
    raw_rows_deleted: int = 0  # raw, aggregate and header rows of usage partitions
    copy_rows_deleted: int = 0
    stopped_at: datetime | None = None  # the hour the budget ran out in; the next run resumes there

    @property
    def stopped_early(self) -> bool:
        return self.stopped_at is not None

    def summary(self) -> dict[str, object]:
        def hour(at: datetime | None) -> str | None:
            return None if at is None else f"{at:%Y-%m-%dT%H}Z"

        return {
            "dry_run": self.dry_run,
            "raw_before": hour(self.raw_before),
            "aggregates_before": hour(self.aggregates_before),
            "hours_sealed": self.hours_sealed,
            "shard_hours_sealed": self.shard_hours_sealed,
            "raw_rows_deleted": self.raw_rows_deleted,
            "copy_rows_deleted": self.copy_rows_deleted,
            "stopped_early": self.stopped_early,
            "stopped_at": hour(self.stopped_at),
        }


async def purge_usage(
    tables: Tables, *, policy: RetentionPolicy, now: datetime, finished_before: datetime | None,
    max_deletes: int = DEFAULT_MAX_DELETES, dry_run: bool = False,
) -> PurgeReport:
    """Seal and delete the raw rows of expired hours, then delete expired hours of the copy (module docstring)."""
    report = PurgeReport(dry_run=dry_run)
    if finished_before is None:
        return report
    report.raw_before = min(policy.raw_cutoff(now), floor_hour(finished_before))
    report.aggregates_before = min(policy.aggregate_cutoff(now), report.raw_before)
    purge = _Purge(tables, report, max_deletes)
    if await purge.raw_hours(hour_key(report.raw_before)):
        await purge.copy_hours(hour_key(report.aggregates_before))
    return report


class _Purge:
    def __init__(self, tables: Tables, report: PurgeReport, max_deletes: int) -> None:
        self.usage = tables.table("usage")
        self.copy = AggregateCopy(tables)
        self.usage_store, self.copy_store = UsageStore(self.usage), UsageStore(self.copy.table)
        self.report = report
        self.dry_run = report.dry_run
        self.left = max_deletes
        self._sealed_hours: set[str] = set()

    async def raw_hours(self, end: str) -> bool:
        """Every hour with raw rows before `end`, oldest first; False when the budget ran out."""
        start = ""
        while first := await _Pages(self.usage, _RANGE, {"lo": start, "hi": end}, size=1).next():
            hour = split_partition(first[0][0])[0]
            if not self.left or not await self._raw_hour(hour):
                self.report.stopped_at = parse_hour_key(hour)
                return False
            start = hour_key(parse_hour_key(hour) + HOUR)
        return True

    async def _raw_hour(self, hour: str) -> bool:
        sealed = await self._seal_copied(hour)
        lo, hi = partition_range(parse_hour_key(hour), parse_hour_key(hour) + HOUR)
        pages = _Pages(self.usage, _RANGE, {"lo": lo, "hi": hi}, walk=self.dry_run)
        while page := await pages.next():
            if not self.left:
                return False
            keys = page[: self.left]
            for partition in dict.fromkeys(pk for pk, _ in keys):
                shard = split_partition(partition)[1]
                if shard not in sealed:  # rows from before aggregates existed: the copy does not know them
                    await self._seal(hour, shard)
                    sealed.add(shard)
            self.report.raw_rows_deleted += await self._delete(self.usage_store, keys)
            if len(keys) < len(page):
                return False
        return True

    async def copy_hours(self, end: str) -> None:
        """Every hour of the copy before `end`."""
        pages = _Pages(self.copy.table, "PartitionKey lt @hi", {"hi": end}, walk=self.dry_run)
        while page := await pages.next():
            keys = page[: self.left]
            self.report.copy_rows_deleted += await self._delete(self.copy_store, keys)
            if len(keys) < len(page):
                self.report.stopped_at = parse_hour_key(page[len(keys)][0])
                return

    async def _seal_copied(self, hour: str) -> set[str]:
        """Seal the hour's shard-hours in the copy that are not sealed yet; every shard the copy knows."""
        shards: dict[str, bool] = {}
        async for row in rows_of(self.copy.table, "PartitionKey eq @pk", {"pk": hour}, ["RowKey", "sealed"]):
            shard, _, group = row["RowKey"].partition("|")
            shards[shard] = shards.get(shard, False) or (not group and bool(row.get("sealed")))
        for shard in [shard for shard, sealed in shards.items() if not sealed]:
            await self._seal(hour, shard)
        return set(shards)

    async def _seal(self, hour: str, shard: str) -> None:
        """Rewrite the shard-hour's copy from its partition's aggregates (a recount if it has none), sealed."""
        self._sealed_hours.add(hour)
        self.report.hours_sealed = len(self._sealed_hours)
        self.report.shard_hours_sealed += 1
        if self.dry_run:
            return
        await self.copy.write_state(await load_state(self.usage, f"{hour}-{shard}"), sealed=True)

    async def _delete(self, store: UsageStore, keys: list[Key]) -> int:
        """Delete the rows (a dry run: count them); how many went. Each counts against the budget."""
        self.left -= len(keys)
        if self.dry_run:
            return len(keys)
        deleted = 0
        for chunk in batches(({"PartitionKey": pk, "RowKey": rk} for pk, rk in keys), TRANSACTION_MAX):
            try:
                await store.apply([Op("delete", entity) for entity in chunk])
            except TransactionConflict:  # a row was gone already (another run): the next query skips it
                log.info("usage rows of %s were deleted by someone else; querying again", chunk[0]["PartitionKey"])
                continue
            deleted += len(chunk)
        return deleted


_RANGE = "PartitionKey ge @lo and PartitionKey lt @hi"


class _Pages:
    """The keys of a query's rows, a non-empty page at a time. Each `next` queries afresh, because the caller
    deleted the page before; `walk` (nothing deleted) follows the continuation instead."""

    def __init__(self, table: TableClient, query: str, params: dict[str, Any], *, size: int | None = None,
                 walk: bool = False) -> None:
        self._table, self._query, self._params, self._size, self._walk = table, query, params, size or PAGE, walk
        self._pages: AsyncIterator[AsyncIterator[TableEntity]] | None = None

    async def next(self) -> list[Key]:
        if self._pages is None or not self._walk:
            self._pages = self._table.query_entities(
                self._query, parameters=self._params, select=["PartitionKey", "RowKey"], results_per_page=self._size
            ).by_page()
        with storage_errors():
            try:
                async for page in self._pages:
                    keys = [(row["PartitionKey"], row["RowKey"]) async for row in page]
                    if keys:
                        return keys
            except ResourceNotFoundError:  # no such table yet (a dry run creates none)
                pass
        return []
