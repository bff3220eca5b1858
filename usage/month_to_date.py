"""Every owner's usage this UTC month, kept per instance from the hourly aggregates (usage.reader), so that the
customers' own view (proxy.account) costs a dictionary lookup per call instead of a read of the month.

The month's hours fall in three tiers, each read for every owner at once (one pass, hour by hour):
  live      the current and the previous hour: re-read when LIVE_TTL_SECONDS old;
  settling  the closed hours metering still recounts (the SETTLE_HOURS before the current one, as
            metering.submit.RECOUNT_HOURS): re-read when SETTLE_TTL_SECONDS old, so a record that lands late
            (a journal replayed after an outage) shows within that time, as metering still bills it;
  frozen    the older hours of the month: each read once, when it leaves the settling window (at a cold start,
            all of them), then kept summed per owner, day and group.
Calls share refreshes: one runs at a time, and those waiting for it find the tiers fresh and read nothing.

Staleness: live hours <= LIVE_TTL_SECONDS (plus the writer's flush and copy, about a second); settling hours <=
SETTLE_TTL_SECONDS. A record that lands in an hour after it left the settling window is billed by no one
(metering no longer recounts it); the admin report counts it, and so does this view on an instance that reads
the hour afterwards (a cold start), never on one that froze it before.

Cost, whatever the number of callers: a call, the owner's (day, group) entries and no storage; per instance, at
most every LIVE_TTL_SECONDS 2 hours and every SETTLE_TTL_SECONDS 5 hours of aggregates (hours x writer shards x
groups: usage.reader), once an hour one hour, and at a cold start the month so far (bench/customer_usage.py).
Memory: about 0.6 KB per (owner, day, group) with usage: 10,000 groups active every day of a month, ~190 MB.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from core.clock import utc_now
from core.hours import HOUR, floor_hour, hours_between, month_start
from core.tables import Tables
from usage.groups import Group
from usage.reader import HourAggregate, read_aggregates
from usage.summing import Sums, merge_sums, sum_by_owner

LIVE_HOURS = 2
SETTLE_HOURS = 6
LIVE_TTL_SECONDS = 5.0
SETTLE_TTL_SECONDS = 300.0
# Hours are read one at a time, this many at once: the event loop (serving proxied calls) is held for the folding
# of this many hours' groups at most, never for a whole month's; folding, not the round trip, is the longer part.
CONCURRENT_HOURS = 2

Reader = Callable[[datetime, datetime], Awaitable[list[HourAggregate]]]


@dataclass(frozen=True)
class OwnerMonth:
    month: datetime  # the month's first hour, UTC
    sums: Sums  # (day, group: usage.groups.GROUP_COLUMNS) -> counters, the owner's month to date
    as_of: datetime  # when the live hours were read


@dataclass(frozen=True)
class _Tier:
    first: datetime
    end: datetime
    read_at: float  # clock()
    owners: dict[str, Sums]


class MonthToDate:
    def __init__(
        self,
        tables: Tables | None = None,
        *,
        read: Reader | None = None,
        now: Callable[[], datetime] = utc_now,
        clock: Callable[[], float] = time.monotonic,
        live_ttl: float = LIVE_TTL_SECONDS,
        settle_ttl: float = SETTLE_TTL_SECONDS,
    ) -> None:
        if read is None:
            if tables is None:
                raise ValueError("MonthToDate needs tables or a reader")
            read = _table_reader(tables)
        self._read = read
        self._now, self._clock = now, clock
        self._live_ttl, self._settle_ttl = live_ttl, settle_ttl
        self._lock = asyncio.Lock()
        self._month: datetime | None = None
        self._frozen: dict[str, Sums] = {}
        self._groups: dict[Group, Group] = {}
        self._frozen_end: datetime | None = None
        self._settling: _Tier | None = None
        self._live: _Tier | None = None
        self._as_of = now()

    async def owner(self, owner: str) -> OwnerMonth:
        """The owner's month to date ("dep-…" / "team-…", as keystore.principal.Principal.owner)."""
        await self._refresh()
        assert self._month is not None
        sums: Sums = {}
        for part in (self._frozen, self._tier_owners(self._settling), self._tier_owners(self._live)):
            merge_sums(sums, part.get(owner, {}))
        return OwnerMonth(self._month, sums, self._as_of)

    async def _refresh(self) -> None:
        async with self._lock:
            now = self._now()
            hour, month = floor_hour(now), month_start(now)
            live_first = max(month, hour - (LIVE_HOURS - 1) * HOUR)
            settle_first = max(month, hour - SETTLE_HOURS * HOUR)
            if month != self._month:
                self._month, self._frozen, self._frozen_end, self._groups = month, {}, month, {}
                self._settling = self._live = None
            assert self._frozen_end is not None
            if self._frozen_end < settle_first:
                await self._freeze(self._frozen_end, settle_first)
            self._settling = await self._fresh(self._settling, settle_first, live_first, self._settle_ttl)
            live = await self._fresh(self._live, live_first, hour + HOUR, self._live_ttl)
            if live is not self._live:
                self._live, self._as_of = live, now

    async def _freeze(self, first: datetime, end: datetime) -> None:
        for owner, sums in (await self._owners(first, end)).items():
            merge_sums(self._frozen.setdefault(owner, {}), sums)
        self._frozen_end = end

    async def _fresh(self, tier: _Tier | None, first: datetime, end: datetime, ttl: float) -> _Tier:
        if tier is not None and (tier.first, tier.end) == (first, end) and self._clock() - tier.read_at < ttl:
            return tier
        read_at = self._clock()
        return _Tier(first, end, read_at, await self._owners(first, end) if first < end else {})

    async def _owners(self, first: datetime, end: datetime) -> dict[str, Sums]:
        """Every owner's sums of the hours [first, end), read and folded hour by hour."""
        owners: dict[str, Sums] = {}
        gate = asyncio.Semaphore(CONCURRENT_HOURS)

        async def fold(hour: datetime) -> None:
            async with gate:
                rows = await self._read(hour, hour + HOUR)
            sum_by_owner(rows, into=owners, groups=self._groups)

        try:
            async with asyncio.TaskGroup() as group:
                for hour in hours_between(first, end - HOUR):
                    group.create_task(fold(hour))
        except ExceptionGroup as failed:  # the first failure as itself (StorageUnavailable: a 503), not a group
            raise failed.exceptions[0] from None
        return owners

    @staticmethod
    def _tier_owners(tier: _Tier | None) -> dict[str, Sums]:
        return {} if tier is None else tier.owners


def _table_reader(tables: Tables) -> Reader:
    async def read(first: datetime, end: datetime) -> list[HourAggregate]:
        rows, _ = await read_aggregates(tables, first, end)
        return rows

    return read
