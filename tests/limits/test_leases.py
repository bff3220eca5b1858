"""RPM/TPM shared across instances through Azurite: within the bound, unused units returned, settle's correction
kept, refused calls free of round trips, storage outages on the outage share, never a 500."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.core.exceptions import ServiceRequestError

from core.errors import RateLimited
from core.settings import Settings
from core.tables import Tables
from keystore.principal import Principal
from limits import leases
from limits.budget import SharedBuckets, settle_row
from limits.lease import limits_of
from limits.leases import SharedRates
from limits.limiter import RATE_TABLE, PlanLimiter
from limits.plans import Plan

KEY = Principal(key_id="k1", key_prefix="lt-k1", key_hash="h1", team="t", plan_id="p", deployment_id="d1")


class Clock:
    """Wall and monotonic time in one, moved by the test."""

    def __init__(self) -> None:
        self.t = 1_750_000_000.0

    def __call__(self) -> float:
        return self.t

    def utc(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)


class CountingTable:
    """Wraps a TableClient: counts round trips; `down` is an outage, `delay` a slow store."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls, self.down, self.delay = inner, 0, False, 0.0

    def __getattr__(self, name: str) -> Any:
        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            await asyncio.sleep(self.delay)
            if self.down:
                raise ServiceRequestError("connection refused")
            return await getattr(self.inner, name)(*args, **kwargs)

        return call


def plan(**limits: int) -> Plan:
    return Plan(plan_id="p", models=("m",), **limits)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def instances(tables: Tables, make_settings: Callable[..., Settings], clock: Clock) -> Callable[..., list[PlanLimiter]]:
    def build(count: int = 2, **overrides: Any) -> list[PlanLimiter]:
        settings = make_settings(**overrides)
        return [PlanLimiter(tables, settings, clock=clock, now=clock.utc, background=False) for _ in range(count)]

    return build


async def admitted(limiter: PlanLimiter, p: Plan, tokens: int = 0) -> bool:
    try:
        admission = await limiter.admit(KEY, p, model_alias="m", estimated_plan_tokens=tokens)
    except RateLimited:
        return False
    await admission.settle(plan_tokens=tokens)
    return True


async def shared_level(tables: Tables, p: Plan, clock: Clock) -> dict[str, float]:
    return await SharedBuckets(tables.table(RATE_TABLE)).level(KEY.key_id, limits_of(p), clock())


async def test_two_instances_together_admit_the_limit_and_unused_units_go_back(
    instances: Any, tables: Tables, clock: Clock
) -> None:
    a, b = instances(rate_lease_fraction=0.05)  # 100 RPM: slices of 5
    p = plan(rpm=100)
    results = await asyncio.gather(*(admitted(limiter, p) for _ in range(90) for limiter in (a, b)))
    per_instance = [sum(results[0::2]), sum(results[1::2])]
    assert min(per_instance) > 0
    assert 100 - 2 * 5 <= sum(per_instance) <= 100  # the clock stands still: no refill, and the bound is 2 x 5
    await a.close()
    await b.close()
    # What the leases still held went back: the shared bucket lacks exactly what was admitted.
    assert await shared_level(tables, p, clock) == {"requests": 100 - sum(per_instance)}


async def test_over_a_minute_two_instances_stay_within_one_instances_limit_plus_two_slices(
    instances: Any, clock: Clock
) -> None:
    a, b = instances(rate_lease_fraction=0.05)  # 60 RPM: slices of 3
    p = plan(rpm=60)
    counts = [0, 0]
    for _ in range(240):  # a minute in quarter seconds, two calls on each instance per step
        for i, limiter in enumerate((a, b, a, b)):
            counts[i % 2] += await admitted(limiter, p)
        clock.t += 0.25
    # One instance alone: its full bucket (60) and a minute of refill (60). Without sharing: 240.
    assert min(counts) > 0
    assert sum(counts) <= 60 + 60 + 2 * 3


async def test_an_idle_lease_is_returned_at_the_second_sync(instances: Any, tables: Tables, clock: Clock) -> None:
    a, b = instances(rate_lease_fraction=0.1)  # 20 RPM: slices of 2
    p = plan(rpm=20)
    assert await admitted(a, p)
    await asyncio.sleep(0)  # let the background top-up land
    await a.flush()
    assert a.shared is not None and sum(a.shared.holding(KEY.key_id).values()) > 0  # used since the last sync: kept
    await a.flush()
    assert a.shared.holding(KEY.key_id) == {}
    assert await shared_level(tables, p, clock) == {"requests": 19}
    assert sum([await admitted(b, p) for _ in range(25)]) == 19


async def test_settle_replaces_the_estimate_and_extra_tokens_are_a_shared_debt(
    instances: Any, tables: Tables, clock: Clock
) -> None:
    a, b = instances(rate_lease_fraction=0.1)  # 600 TPM: slices of 60
    p = plan(tpm=600)
    admission = await a.admit(KEY, p, model_alias="m", estimated_plan_tokens=300)
    await admission.settle(plan_tokens=50)
    admission = await a.admit(KEY, p, model_alias="m", estimated_plan_tokens=100)
    await admission.settle(plan_tokens=400)  # 300 more than estimated: the lease goes into debt
    await a.close()
    assert await shared_level(tables, p, clock) == {"tokens": 600 - 50 - 400}
    assert await admitted(b, p, 150)
    with pytest.raises(RateLimited) as refused:
        await b.admit(KEY, p, model_alias="m", estimated_plan_tokens=1)
    error = refused.value
    assert error.body()["error"]["type"] == "tokens"
    assert error.headers["x-ratelimit-remaining-tokens"] == "0"
    assert error.headers["x-ratelimit-limit-tokens"] == "600"
    # The shared bucket is empty: a slice (60 tokens) at 600 per minute, and up to half of that again as jitter.
    assert 6000 <= int(error.headers["retry-after-ms"]) <= 9000


async def test_a_shared_refusal_takes_nothing_and_costs_no_round_trip(tables: Tables, clock: Clock) -> None:
    table = CountingTable(tables.table(RATE_TABLE))
    rates = SharedRates(SharedBuckets(table), lease_fraction=0.05, outage_share=1, clock=clock)  # type: ignore[arg-type]
    p = plan(rpm=40, tpm=4000)
    taken = [await rates.take(KEY.key_id, p, 100) for _ in range(40)]
    await rates.sync()  # the last top-up, if any, has landed
    calls = table.calls
    for _ in range(50):
        with pytest.raises(RateLimited) as refused:
            await rates.take(KEY.key_id, p, 100)
        clock.t += 0.05  # a request refills in 1.5 s, but the instance waits for a slice (2) before it looks again
    assert table.calls == calls
    assert refused.value.body()["error"]["type"] == "requests"
    assert 550 <= int(refused.value.headers["retry-after-ms"]) <= 2050  # 3 to 4.5 s after the first one, 2.45 s ago
    taken[0].give_back(request=True)  # a call refused after admission (quota, balance) gives both back
    assert rates.holding(KEY.key_id) == {"requests": 1, "tokens": 100}
    await rates.take(KEY.key_id, p, 100)


async def test_storage_outage_runs_on_the_outage_share_then_recovers(tables: Tables, clock: Clock) -> None:
    table = CountingTable(tables.table(RATE_TABLE))
    rates = SharedRates(SharedBuckets(table), lease_fraction=0.1, outage_share=0.5, clock=clock)  # type: ignore[arg-type]
    p = plan(rpm=10)
    table.down = True
    shares = [await rates.take(KEY.key_id, p, 0) for _ in range(5)]  # half of 10 RPM, from this instance alone
    with pytest.raises(RateLimited) as refused:
        await rates.take(KEY.key_id, p, 0)
    assert refused.value.status_code == 429
    assert table.calls == 1  # the calls did not wait for storage again
    shares[0].give_back(request=True)
    await rates.take(KEY.key_id, p, 0)
    table.down = False
    clock.t += leases.OFFLINE_RETRY_SECONDS + 12  # the outage bucket (5 RPM) has refilled by 1; storage is retried
    await rates.take(KEY.key_id, p, 0)  # still the outage share: the retry runs in the background
    await rates.sync()
    await rates.take(KEY.key_id, p, 0)  # from a lease again
    await rates.close()
    assert await SharedBuckets(tables.table(RATE_TABLE)).level(KEY.key_id, {"requests": 10}, clock()) == {
        "requests": 9
    }


async def test_a_slow_store_is_not_waited_for_beyond_the_sync_wait(
    tables: Tables, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(leases, "SYNC_WAIT_SECONDS", 0.01)
    table = CountingTable(tables.table(RATE_TABLE))
    rates = SharedRates(SharedBuckets(table), lease_fraction=0.1, outage_share=0.2, clock=clock)  # type: ignore[arg-type]
    table.delay = 0.1
    assert [await rates.take(KEY.key_id, plan(rpm=10), 0) for _ in range(2)]  # 2 = 0.2 x 10, on the outage share
    with pytest.raises(RateLimited):
        await rates.take(KEY.key_id, plan(rpm=10), 0)
    await rates.close()


async def test_without_the_shared_budget_each_instance_has_the_whole_limit(instances: Any) -> None:
    a, b = instances(rate_shared_budget=False)
    assert a.shared is None
    p = plan(rpm=5)
    assert sum([await admitted(limiter, p) for limiter in (a, b) for _ in range(6)]) == 10


def test_a_bucket_grants_whole_units_refills_with_time_and_takes_back_debts() -> None:
    levels, granted = settle_row({"requests": 2.5}, 100.0, {"requests": 60}, {"requests": 5}, {}, 100.0)
    assert (granted, levels) == ({"requests": 2}, {"requests": 0.5})
    levels, granted = settle_row(levels, 100.0, {"requests": 60}, {"requests": 5}, {}, 101.0)
    assert (granted, levels) == ({"requests": 1}, {"requests": 0.5})
    levels, granted = settle_row({}, 0.0, {"tokens": 100}, {}, {"tokens": 50}, 10.0)
    assert (granted, levels) == ({"tokens": 0}, {"tokens": 100.0})  # never above the limit
    levels, _ = settle_row({"tokens": 10.0}, 0.0, {"tokens": 100}, {}, {"tokens": -40}, 0.0)
    assert levels == {"tokens": -30.0}
    assert math.isclose(settle_row({"tokens": -30.0}, 0.0, {"tokens": 60}, {}, {}, 30.0)[0]["tokens"], 0.0)
