"""The aggregate copy (table `usageagg`): what reports and metering read, one query for any range of hours.

Layout:
  PartitionKey = "{YYYYMMDDHH}" (UTC hour)
  RowKey "{shard}"              the shard-hour. Registered before the shard's first transaction in that hour, so
                                a reader knows every usage partition of the hour; `version` and `requests` of
                                the copy; `sealed` once retention verified the copy and deleted the raw rows.
  RowKey "{shard}|{group key}"  a copy of one group's counters (usage.groups) as some transaction committed
                                them, with the group's values.
The usage partitions are the truth (usage.committer); this is a copy written behind them (every second
and on flush). It only ever holds counters a transaction committed, and counters only grow, so a shard-hour's
copy is current exactly when its rows' requests add up to the `requests` of the usage partition's header:
usage.reader checks that with one point read per shard-hour and reads the partition itself when it is not.
Metadata only, as in usage rows.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from core.tables import Tables, int64, storage_errors
from usage.committer import TRANSACTION_MAX
from usage.groups import Counts, Group, group_key
from usage.partition import PartitionState, aggregate_entity
from usage.store import Entity, Op, UsageStore, split_partition

TABLE = "usageagg"

log = logging.getLogger(__name__)


def copy_row_key(shard: str, group: Group) -> str:
    return f"{shard}|{group_key(group)}"


def header_entity(hour: str, shard: str, *, version: int, requests: int, sealed: bool = False) -> Entity:
    entity: Entity = {"PartitionKey": hour, "RowKey": shard, "version": int64(version), "requests": int64(requests)}
    if sealed:
        entity["sealed"] = True
    return entity


@dataclass
class _Pending:
    version: int
    requests: int
    counts: Counts = field(default_factory=dict)

    def take(self, newer: _Pending) -> _Pending:
        """This copy, overlaid with a newer one of the same partition."""
        return _Pending(newer.version, newer.requests, {**self.counts, **newer.counts})


class AggregateCopy:
    def __init__(self, tables: Tables) -> None:
        self.table: TableClient = tables.table(TABLE)
        self._store = UsageStore(self.table)
        self._pending: dict[str, _Pending] = {}
        self._lock = asyncio.Lock()

    @property
    def behind(self) -> int:
        """Usage partitions whose latest commit is not copied yet."""
        return len(self._pending)

    async def register(self, hour: str, shard: str) -> None:
        """Before the shard's first transaction in the hour: a merge, so a copy already there stays."""
        with storage_errors():
            entity = {"PartitionKey": hour, "RowKey": shard}
            await self.table.upsert_entity(entity, mode=UpdateMode.MERGE, **self._store.call_options)

    def committed(self, state: PartitionState, groups: set[Group]) -> None:
        """Note a commit (no I/O): its changed groups are copied at the next flush."""
        fresh = _Pending(state.version, state.requests, {group: list(state.counts[group]) for group in groups})
        known = self._pending.get(state.partition)
        self._pending[state.partition] = fresh if known is None else known.take(fresh)

    async def flush(self) -> None:
        """Copy what was committed since the last flush; raises StorageUnavailable (kept for the next one)."""
        async with self._lock:
            pending, self._pending = self._pending, {}
            for partition, copy in list(pending.items()):
                hour, shard = split_partition(partition)
                try:
                    await self.write(hour, shard, copy.counts, version=copy.version, requests=copy.requests)
                except BaseException:
                    for left, older in pending.items():
                        newer = self._pending.get(left)
                        self._pending[left] = older if newer is None else older.take(newer)
                    raise
                del pending[partition]

    async def write(
        self, hour: str, shard: str, counts: Counts, *, version: int, requests: int, sealed: bool = False
    ) -> None:
        """The groups' rows, then the shard-hour's header (so a cut-short write leaves the header behind)."""
        rows = [aggregate_entity(hour, group, values, copy_row_key(shard, group)) for group, values in counts.items()]
        header = header_entity(hour, shard, version=version, requests=requests, sealed=sealed)
        for start in range(0, len(rows), TRANSACTION_MAX):
            await self._store.apply([Op("replace", row) for row in rows[start : start + TRANSACTION_MAX]])
        with storage_errors():
            await self.table.upsert_entity(header, mode=UpdateMode.MERGE, **self._store.call_options)
