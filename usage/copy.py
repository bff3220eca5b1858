"""The aggregate copy (table `usageagg`): what reports and metering read, a few rows for any range of hours.

Layout: PartitionKey = "{YYYYMMDDHH}" (UTC hour); per shard-hour one row, RowKey "{shard}", holding
  `version`, `requests`   the usage partition's header as of the copy (usage.store)
  `parts`                 how many rows the copy spans (more only past ~2,500 groups: "{shard}|1", "{shard}|2", …)
  `sealed`                retention verified the copy and deleted the partition's raw rows
  `d0`, `d1`, …           the groups and their counters (usage.groups), as JSON text
                          [[team, deployment, plan, model, key, requests, errors, …], …] cut into properties
A row is registered (keys only) before the shard's first transaction in the hour, so a reader knows every
usage partition of the hour. One row per shard-hour, not per group: a 7-day report reads 168 rows per writer
shard whatever the number of groups, and the emulator's paging (a scan per page) stays cheap.

The usage partitions are the truth (usage.committer); this copy is written behind them, whole, every second and
on flush. It only ever holds counters some transaction committed, and counters only grow, so a shard-hour's
copy is current exactly when every group appears once and their requests add up to the `requests` of the usage
partition's header: usage.reader checks that with one point read per shard-hour and reads the partition itself
when it is not. Metadata only, as in usage rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from core.tables import Tables, int64, int_value, rows_of, storage_errors
from usage.groups import COUNTERS, GROUP_COLUMNS, REQUESTS, Counts, Group, group_order
from usage.partition import PartitionState
from usage.store import Entity, Op, UsageStore, split_partition

TABLE = "usageagg"
_CHUNK = 15_000  # characters per string property: at most 64 KiB of UTF-16 each
_CHUNKS_PER_ROW = 24  # under the 1 MiB an entity may hold, with room for the rest
_WIDTH = len(GROUP_COLUMNS) + len(COUNTERS)
# Copies written before the reasoning, media and auto counters hold the first eight counters only.
_FIRST_WIDTH = len(GROUP_COLUMNS) + COUNTERS.index("reasoning_tokens")
_TRANSACTION_CHARS = 1_000_000  # UTF-8 takes up to 3 bytes a character

ShardHour = tuple[str, str]  # (hour key, shard)


@dataclass
class CopiedShardHour:
    hour: str
    shard: str
    sealed: bool = False
    version: int = 0
    counts: Counts = field(default_factory=dict)
    consistent: bool = True  # every part present, no group twice

    @property
    def requests(self) -> int:
        return sum(counters[REQUESTS] for counters in self.counts.values())


def encode(hour: str, shard: str, counts: Counts, *, version: int, requests: int, sealed: bool) -> list[Entity]:
    """The shard-hour's rows: the first with the header, each a self-contained list of groups."""
    rows: list[Entity] = []
    for part, chunks in enumerate(_parts(counts)):
        row: Entity = {"PartitionKey": hour, "RowKey": shard if not part else f"{shard}|{part}"}
        row.update({f"d{index}": chunk for index, chunk in enumerate(chunks)})
        rows.append(row)
    rows[0].update(version=int64(version), requests=int64(requests), parts=len(rows))
    if sealed:
        rows[0]["sealed"] = True
    return rows


def _parts(counts: Counts) -> Iterator[list[str]]:
    items = [orjson.dumps([*group, *counts[group]]).decode() for group in sorted(counts, key=group_order)]
    budget = _CHUNK * _CHUNKS_PER_ROW - 2
    part: list[str] = []
    size = 0
    for item in items:
        if part and size + len(item) + 1 > budget:
            yield _chunked("[" + ",".join(part) + "]")
            part, size = [], 0
        part.append(item)
        size += len(item) + 1
    yield _chunked("[" + ",".join(part) + "]")


def _chunked(text: str) -> list[str]:
    return [text[start : start + _CHUNK] for start in range(0, len(text), _CHUNK)] or ["[]"]


def decode(row: Any) -> list[tuple[Group, list[int]]] | None:
    """The row's groups and counters; None when they cannot be read (the copy is then not trusted)."""
    chunks: list[str] = []
    while (chunk := row.get(f"d{len(chunks)}")) is not None:
        chunks.append(chunk)
    if not chunks:
        return []
    try:
        items = orjson.loads("".join(chunks))
    except orjson.JSONDecodeError:
        return None
    if not isinstance(items, list) or not all(
        isinstance(item, list) and _FIRST_WIDTH <= len(item) <= _WIDTH for item in items
    ):
        return None
    padding = [0] * len(COUNTERS)
    return [
        (tuple(item[: len(GROUP_COLUMNS)]), [*item[len(GROUP_COLUMNS) :], *padding[: _WIDTH - len(item)]])
        for item in items
    ]


class AggregateCopy:
    def __init__(self, tables: Tables) -> None:
        self.table: TableClient = tables.table(TABLE)
        self._store = UsageStore(self.table)
        self._pending: dict[str, PartitionState] = {}
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

    def committed(self, state: PartitionState) -> None:
        """Note a commit (no I/O): the partition's state is copied, whole, at the next flush. States are never
        changed once committed (usage.committer builds a new one per transaction), so keeping it is enough."""
        self._pending[state.partition] = state

    async def flush(self) -> None:
        """Copy what was committed since the last flush; raises StorageUnavailable (kept for the next one)."""
        async with self._lock:
            pending, self._pending = self._pending, {}
            for partition, state in list(pending.items()):
                try:
                    await self.write_state(state)
                except BaseException:
                    for left, older in pending.items():
                        self._pending.setdefault(left, older)  # a newer commit noted meanwhile wins
                    raise
                del pending[partition]

    async def write_state(self, state: PartitionState, *, sealed: bool = False) -> None:
        """Replace the copy of the state's shard-hour with the state (it also registers the shard-hour)."""
        hour, shard = split_partition(state.partition)
        await self.write(hour, shard, state.counts, version=state.version, requests=state.requests, sealed=sealed)

    async def write(
        self, hour: str, shard: str, counts: Counts, *, version: int, requests: int, sealed: bool = False
    ) -> None:
        """Replace the shard-hour's copy: one transaction (the rows share the hour's partition) while it stays
        well under the 4 MiB a transaction may carry, else a row at a time (readers check it either way)."""
        rows = encode(hour, shard, counts, version=version, requests=requests, sealed=sealed)
        size = sum(len(value) for row in rows for value in row.values() if isinstance(value, str))
        step = len(rows) if size <= _TRANSACTION_CHARS else 1
        for start in range(0, len(rows), step):
            await self._store.apply([Op("replace", row) for row in rows[start : start + step]])

    async def read(self, lo: str, hi: str) -> dict[ShardHour, CopiedShardHour]:
        """Every shard-hour copied for the hours [lo, hi) (hour keys)."""
        copies: dict[ShardHour, CopiedShardHour] = {}
        parts: dict[ShardHour, set[int]] = {}
        expected: dict[ShardHour, int] = {}
        async for row in rows_of(self.table, "PartitionKey ge @lo and PartitionKey lt @hi", {"lo": lo, "hi": hi}):
            shard, _, part = row["RowKey"].partition("|")
            key = (row["PartitionKey"], shard)
            copy = copies.get(key) or copies.setdefault(key, CopiedShardHour(*key))
            if not part:  # the first row: "{shard}" sorts before "{shard}|1"
                copy.sealed, copy.version = bool(row.get("sealed")), int_value(row.get("version"))
                expected[key] = int_value(row.get("parts")) or 1
            elif int(part) >= expected.get(key, 1):
                continue  # left over from an earlier, longer copy
            parts.setdefault(key, set()).add(int(part or 0))
            groups = decode(row)
            copy.consistent &= groups is not None
            for group, counters in groups or ():
                copy.consistent &= group not in copy.counts
                copy.counts[group] = counters
        for key, copy in copies.items():
            copy.consistent &= parts[key] == set(range(expected.get(key, 1)))
        return copies
