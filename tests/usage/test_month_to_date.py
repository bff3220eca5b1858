"""usage.month_to_date: every owner's month to date equals a sum of the whole month's aggregates, and the tiers
read what they promise (a counting reader, a settable clock) - once for all callers, never per call."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.hours import HOUR, floor_hour, hours_between
from keystore.principal import Principal
from usage.groups import COUNTERS, GROUP_COLUMNS, Group
from usage.month_to_date import LIVE_TTL_SECONDS, SETTLE_TTL_SECONDS, MonthToDate
from usage.reader import HourAggregate
from usage.summing import Sums, owner_of, sum_aggregates

MONTH = datetime(2031, 3, 1, tzinfo=UTC)
GROUPS: tuple[Group, ...] = (
    ("team-x", "dep1", "standard", "gpt-4o-mini", "k1"),
    ("team-x", "dep1", "standard", "gpt-4o", "k2"),
    ("team-y", "dep2", "standard", "gpt-4o-mini", "k3"),
    ("ops", None, "starter", "gpt-4o-mini", "k4"),
    ("ops", None, "starter", "text-embedding-3-small", "k5"),
    ("dep1", None, "starter", "gpt-4o-mini", "k6"),  # a team named like a deployment is still another owner
)


class World:
    """Aggregates by hour (what usage.reader would return), a wall clock and a monotonic one, and the reads made."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.mono = 0.0
        self.hours: dict[datetime, dict[Group, list[int]]] = {}
        self.reads: list[tuple[datetime, datetime]] = []

    def add(self, hour: datetime, group: Group, requests: int = 1, tokens: int = 10) -> None:
        counters = self.hours.setdefault(hour, {}).setdefault(group, [0] * len(COUNTERS))
        counters[0] += requests
        counters[COUNTERS.index("total_tokens")] += tokens
        counters[COUNTERS.index("plan_tokens")] += tokens

    def hours_read(self) -> list[datetime]:
        """The hours read since the last clear, in order; every read is of one hour."""
        assert all(end - first == HOUR for first, end in self.reads)
        return sorted(first for first, _ in self.reads)

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.mono += seconds

    async def read(self, first: datetime, end: datetime) -> list[HourAggregate]:
        self.reads.append((first, end))
        await asyncio.sleep(0)
        return [
            HourAggregate(hour, group, tuple(counters))
            for hour, groups in self.hours.items() if first <= hour < end
            for group, counters in groups.items()
        ]

    def cache(self) -> MonthToDate:
        return MonthToDate(read=self.read, now=lambda: self.now, clock=lambda: self.mono)

    def expected(self, owner: str) -> Sums:
        start = floor_hour(self.now).replace(day=1, hour=0)
        rows = [r for r in self.read_all() if start <= r.hour and owner_of(r.group) == owner]
        return sum_aggregates(rows, GROUP_COLUMNS, daily=True)

    def read_all(self) -> list[HourAggregate]:
        return [HourAggregate(h, g, tuple(c)) for h, groups in self.hours.items() for g, c in groups.items()]


def filled(now: datetime) -> World:
    world = World(now)
    hour = MONTH.replace(month=2, day=27)  # the month before counts for nothing
    while hour <= floor_hour(now):
        for index, group in enumerate(GROUPS):
            if (hour.hour + index) % 3 == 0:
                world.add(hour, group, tokens=hour.hour + index)
        hour += HOUR
    return world


def owners() -> set[str]:
    return {owner_of(group) for group in GROUPS}


async def test_each_owner_gets_its_own_month_and_nothing_of_the_others() -> None:
    world = filled(MONTH + timedelta(days=9, hours=13, minutes=20))
    cache = world.cache()
    for owner in sorted(owners()):
        mine = await cache.owner(owner)
        assert mine.sums == world.expected(owner)
        assert {owner_of(group) for _, group in mine.sums} == {owner}
        assert mine.month == MONTH
    assert (await cache.owner("dep-unknown")).sums == {}
    assert owner_of(GROUPS[5]) == "team-dep1" != owner_of(GROUPS[0]) == "dep-dep1"


def test_owner_of_names_the_owner_as_the_principal_does() -> None:
    for team, deployment, plan, _, key in GROUPS:
        principal = Principal(key_id=str(key), key_prefix="lt-abcdef", key_hash="0" * 64, team=str(team),
                              plan_id=str(plan), deployment_id=deployment)
        assert owner_of((team, deployment, plan, "m", key)) == principal.owner


async def test_a_cold_start_reads_the_month_in_one_pass_per_tier_then_calls_read_nothing() -> None:
    world = filled(MONTH + timedelta(days=9, hours=13, minutes=20))
    cache = world.cache()
    now_hour = floor_hour(world.now)
    await asyncio.gather(*(cache.owner(owner) for owner in sorted(owners()) * 10))
    assert world.hours_read() == hours_between(MONTH, now_hour)  # each once, whatever the number of callers
    world.advance(LIVE_TTL_SECONDS - 0.1)
    await cache.owner("dep-dep1")
    assert world.hours_read() == hours_between(MONTH, now_hour)


async def test_live_hours_refresh_after_their_ttl_and_settling_hours_after_theirs() -> None:
    world = filled(MONTH + timedelta(days=9, hours=13, minutes=20))
    cache = world.cache()
    now_hour = floor_hour(world.now)
    await cache.owner("dep-dep1")
    world.reads.clear()
    world.add(now_hour, GROUPS[0], tokens=1000)
    world.add(now_hour - 3 * HOUR, GROUPS[0], tokens=2000)  # a journal replay lands late
    world.add(now_hour - 8 * HOUR, GROUPS[0], tokens=4000)  # later than metering recounts: frozen already

    world.advance(LIVE_TTL_SECONDS)
    seen = await cache.owner("dep-dep1")
    assert world.hours_read() == [now_hour - HOUR, now_hour]
    assert seen.as_of == world.now
    assert _tokens(seen.sums) == _tokens(world.expected("dep-dep1")) - 6000

    world.reads.clear()
    world.advance(SETTLE_TTL_SECONDS)
    seen = await cache.owner("dep-dep1")
    assert world.hours_read() == hours_between(now_hour - 6 * HOUR, now_hour)
    assert _tokens(seen.sums) == _tokens(world.expected("dep-dep1")) - 4000
    assert _tokens((await world.cache().owner("dep-dep1")).sums) == _tokens(world.expected("dep-dep1"))


async def test_a_new_hour_freezes_one_hour_and_a_new_month_starts_from_nothing() -> None:
    world = filled(MONTH + timedelta(days=9, hours=13, minutes=59))
    cache = world.cache()
    await cache.owner("team-ops")
    world.reads.clear()
    world.advance(120)
    now_hour = floor_hour(world.now)
    world.add(now_hour, GROUPS[3], tokens=7)
    assert (await cache.owner("team-ops")).sums == world.expected("team-ops")
    # the one hour leaving the settling window, then the (moved) settling and live hours
    assert world.hours_read() == hours_between(now_hour - 7 * HOUR, now_hour)

    next_month = datetime(2031, 4, 1, 0, 10, tzinfo=UTC)
    world.advance((next_month - world.now).total_seconds())
    world.add(datetime(2031, 4, 1, tzinfo=UTC), GROUPS[3], tokens=5)
    world.reads.clear()
    fresh = await cache.owner("team-ops")
    assert fresh.month == datetime(2031, 4, 1, tzinfo=UTC) and _tokens(fresh.sums) == 5
    assert world.hours_read() == [datetime(2031, 4, 1, tzinfo=UTC)]


async def test_a_failed_read_changes_nothing_and_the_next_call_reads_again() -> None:
    world = filled(MONTH + timedelta(days=2, hours=5))
    cache = world.cache()
    before = await cache.owner("dep-dep2")
    world.advance(LIVE_TTL_SECONDS)
    real = world.read

    async def failing(first: datetime, end: datetime) -> list[HourAggregate]:
        raise ConnectionError("storage unreachable")

    cache._read = failing  # the reader the cache was built with
    with pytest.raises(ConnectionError):
        await cache.owner("dep-dep2")
    cache._read = real
    assert (await cache.owner("dep-dep2")).sums == before.sums


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(
        st.one_of(st.integers(0, 12), st.integers(0, 23 * 24)), st.integers(0, len(GROUPS) - 1), st.integers(0, 10**6),
    ), max_size=60),
    st.lists(st.floats(0, 4000), min_size=1, max_size=6),
)
def test_any_history_and_call_times_sum_like_the_whole_month(
    writes: list[tuple[int, int, int]], steps: list[float],
) -> None:
    asyncio.run(_history(writes, steps))


async def _history(writes: list[tuple[int, int, int]], steps: list[float]) -> None:
    world = World(MONTH + timedelta(days=20, minutes=50))
    cache = world.cache()
    for offset, index, tokens in writes:  # written before the first call: nothing lands late
        world.add(floor_hour(world.now) - offset * HOUR, GROUPS[index], tokens=tokens)
    for step in steps:
        world.advance(step)
        for owner in sorted(owners()):
            assert (await cache.owner(owner)).sums == world.expected(owner)


def _tokens(sums: Sums) -> int:
    return sum(counters[COUNTERS.index("total_tokens")] for counters in sums.values())
