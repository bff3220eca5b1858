"""Usage aggregates of a range of hours, read from the copy (usage.copy) and checked against the truth.

Cost for the hours [first, end): one query of `usageagg` returning one row per shard-hour (its groups' counters:
hours x shards x groups numbers in all); one point read of a usage partition's header per shard-hour that is not
sealed (16 at a time); and only for a shard-hour whose copy is behind (its writer died between a commit and the
copy, or the copy is on its way), one read of that partition's aggregate rows. Never anything that grows with
the number of requests.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

from core.errors import StorageUnavailable
from core.hours import hour_key, parse_hour_key
from core.tables import Tables
from usage.copy import AggregateCopy, CopiedShardHour
from usage.groups import Group, add_counters, zero
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


async def read_aggregates(
    tables: Tables, first: datetime, end: datetime, *, repair: bool = True
) -> tuple[list[HourAggregate], ReadStats]:
    """Every group's counters per hour in [first, end) (whole UTC hours). `repair` rewrites a copy found behind."""
    copy = AggregateCopy(tables)
    shard_hours = await copy.read(hour_key(first), hour_key(end))
    stats = ReadStats(shard_hours=len(shard_hours), sealed=sum(s.sealed for s in shard_hours.values()))
    gate = asyncio.Semaphore(_CHECKS)

    async def check(shard_hour: CopiedShardHour) -> None:
        async with gate:
            if not shard_hour.sealed and not await _current(tables, shard_hour):
                stats.behind += 1
                await _read_truth(tables, copy, shard_hour, repair=repair)

    await asyncio.gather(*(check(shard_hour) for shard_hour in shard_hours.values()))
    totals: dict[tuple[str, Group], list[int]] = {}
    for shard_hour in shard_hours.values():
        for group, counters in shard_hour.counts.items():
            add_counters(totals.setdefault((shard_hour.hour, group), zero()), counters)
    hours = {hour: parse_hour_key(hour) for hour, _ in shard_hours}  # once per shard-hour, not per group
    rows = [HourAggregate(hours[hour], group, tuple(c)) for (hour, group), c in totals.items()]
    return rows, stats


async def _current(tables: Tables, shard_hour: CopiedShardHour) -> bool:
    if not shard_hour.consistent:
        return False
    partition = hour_partition(parse_hour_key(shard_hour.hour), shard_hour.shard)
    return shard_hour.requests == await header_requests(tables.table("usage"), partition)


async def _read_truth(tables: Tables, copy: AggregateCopy, shard_hour: CopiedShardHour, *, repair: bool) -> None:
    partition = hour_partition(parse_hour_key(shard_hour.hour), shard_hour.shard)
    state = await load_state(tables.table("usage"), partition)
    shard_hour.counts = state.counts
    if not repair or not state.counts:
        return
    try:
        await copy.write_state(state)
    except StorageUnavailable as error:  # the answer stands; the next read repairs it
        log.warning("Could not repair the usage copy of %s: %s", partition, error)
