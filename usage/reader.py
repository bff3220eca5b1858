"""Usage aggregates of a range of hours, read from the copy (usage.copy) and checked against the truth.

Cost for the hours [first, end): one query of `usageagg` returning its (hours x shards x groups) rows; one
point read of a usage partition's header per shard-hour that is not sealed (16 at a time); and only for a
shard-hour whose copy is behind (its writer died between a commit and the copy, or the copy is on its way),
one read of that partition's aggregate rows. Never anything that grows with the number of requests.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime

from core.errors import StorageUnavailable
from core.hours import hour_key, parse_hour_key
from core.tables import Tables, rows_of
from usage.copy import AggregateCopy
from usage.groups import REQUESTS, Counts, Group, add_counters, counters_of, group_of_row, zero
from usage.partition import header_requests, load_state
from usage.store import hour_partition

_CHECKS = 16

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HourAggregate:
    hour: datetime
    group: Group
    counters: tuple[int, ...]  # in usage.groups.COUNTERS order


@dataclass
class ReadStats:
    shard_hours: int = 0
    sealed: int = 0
    behind: int = 0  # read from the usage partition itself


@dataclass
class _ShardHour:
    hour: str
    shard: str
    sealed: bool = False
    counts: Counts = field(default_factory=dict)


async def read_aggregates(
    tables: Tables, first: datetime, end: datetime, *, repair: bool = True
) -> tuple[list[HourAggregate], ReadStats]:
    """Every group's counters per hour in [first, end) (whole UTC hours). `repair` rewrites a copy found behind."""
    copy = AggregateCopy(tables)
    shard_hours = await _copied(copy, hour_key(first), hour_key(end))
    stats = ReadStats(shard_hours=len(shard_hours), sealed=sum(s.sealed for s in shard_hours.values()))
    gate = asyncio.Semaphore(_CHECKS)

    async def check(shard_hour: _ShardHour) -> None:
        async with gate:
            if not shard_hour.sealed and not await _current(tables, shard_hour):
                stats.behind += 1
                await _read_truth(tables, copy, shard_hour, repair=repair)

    await asyncio.gather(*(check(shard_hour) for shard_hour in shard_hours.values()))
    totals: dict[tuple[str, Group], list[int]] = {}
    for shard_hour in shard_hours.values():
        for group, counters in shard_hour.counts.items():
            add_counters(totals.setdefault((shard_hour.hour, group), zero()), counters)
    rows = [HourAggregate(parse_hour_key(hour), group, tuple(c)) for (hour, group), c in totals.items()]
    return rows, stats


async def _copied(copy: AggregateCopy, lo: str, hi: str) -> dict[tuple[str, str], _ShardHour]:
    shard_hours: dict[tuple[str, str], _ShardHour] = {}
    query = "PartitionKey ge @lo and PartitionKey lt @hi"
    async for row in rows_of(copy.table, query, {"lo": lo, "hi": hi}):
        shard, _, group = row["RowKey"].partition("|")
        key = (row["PartitionKey"], shard)
        shard_hour = shard_hours.get(key) or shard_hours.setdefault(key, _ShardHour(*key))
        if group:
            shard_hour.counts[group_of_row(row)] = counters_of(row)
        else:
            shard_hour.sealed = bool(row.get("sealed"))
    return shard_hours


async def _current(tables: Tables, shard_hour: _ShardHour) -> bool:
    partition = hour_partition(parse_hour_key(shard_hour.hour), shard_hour.shard)
    copied = sum(counters[REQUESTS] for counters in shard_hour.counts.values())
    return copied == await header_requests(tables.table("usage"), partition)


async def _read_truth(tables: Tables, copy: AggregateCopy, shard_hour: _ShardHour, *, repair: bool) -> None:
    partition = hour_partition(parse_hour_key(shard_hour.hour), shard_hour.shard)
    state = await load_state(tables.table("usage"), partition)
    shard_hour.counts = state.counts
    if not repair or not state.counts:
        return
    try:
        await copy.write(
            shard_hour.hour, shard_hour.shard, state.counts, version=state.version, requests=state.requests
        )
    except StorageUnavailable as error:  # the answer stands; the next read repairs it
        log.warning("Could not repair the usage copy of %s: %s", partition, error)
