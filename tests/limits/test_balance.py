"""Prepaid balances: exact reserve/settle/refund arithmetic, never negative under concurrency across instances."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from azure.core.exceptions import ServiceRequestError, ServiceResponseError

from core.errors import InsufficientQuota, StorageUnavailable
from core.settings import Settings
from core.tables import Tables
from keystore.principal import Principal
from limits.balance import PrepaidBalances
from limits.limiter import BALANCE_TABLE, PlanLimiter
from limits.plans import Plan

OWNER = "dep-d1"
PLAN = Plan(plan_id="prepaid", models=("m",), mode="prepaid", rpm=1000, tpm=10**6)


def caller(n: int = 0, deployment: str = "d1") -> Principal:
    return Principal(
        key_id=f"k{n}", key_prefix="lt-x", key_hash="h", team="t", plan_id="prepaid", deployment_id=deployment
    )


@pytest.fixture
def limiter(tables: Tables, settings: Settings) -> PlanLimiter:
    return PlanLimiter(tables, settings, background=False)


async def admit(limiter: PlanLimiter, tokens: int, n: int = 0) -> Any:
    return await limiter.admit(caller(n), PLAN, model_alias="m", estimated_plan_tokens=tokens)


async def test_reserve_settle_refund_arithmetic_is_exact(limiter: PlanLimiter) -> None:
    assert await limiter.credit(OWNER, 1000) == 1000
    admission = await admit(limiter, 300)
    state = await limiter.balance(OWNER)
    assert (state.available, state.reserved) == (700, 300)
    await admission.settle(plan_tokens=120)
    state = await limiter.balance(OWNER)
    assert (state.available, state.reserved, state.shortfall) == (880, 0, 0)
    failed = await admit(limiter, 200)
    await failed.refund()
    await failed.refund()  # once only
    await failed.settle(plan_tokens=200)  # ignored after a refund
    state = await limiter.balance(OWNER)
    assert (state.available, state.reserved) == (880, 0)


async def test_a_reserve_that_does_not_fit_is_refused_and_takes_nothing(limiter: PlanLimiter) -> None:
    await limiter.credit(OWNER, 100)
    with pytest.raises(InsufficientQuota) as refused:
        await admit(limiter, 101)
    error = refused.value
    assert error.status_code == 429
    assert error.headers["x-should-retry"] == "false"
    assert error.headers["x-ratelimit-remaining-requests"] == "1000"  # the refused call gave its request back
    assert error.body()["error"]["code"] == "insufficient_quota"
    assert (await limiter.balance(OWNER)).available == 100
    await (await admit(limiter, 100)).settle(plan_tokens=100)  # exactly what is left fits
    assert (await limiter.balance(OWNER)).available == 0


async def test_an_empty_balance_refuses_even_a_zero_estimate(limiter: PlanLimiter) -> None:
    with pytest.raises(InsufficientQuota):
        await admit(limiter, 0)


async def test_usage_beyond_the_reservation_is_capped_and_flagged(limiter: PlanLimiter) -> None:
    await limiter.credit(OWNER, 100)
    admission = await admit(limiter, 80)
    await admission.settle(plan_tokens=150)
    assert admission.shortfall == 50
    state = await limiter.balance(OWNER)
    assert (state.available, state.reserved, state.shortfall) == (0, 0, 50)


async def test_credit_must_be_positive(limiter: PlanLimiter) -> None:
    with pytest.raises(ValueError, match="positive"):
        await limiter.credit(OWNER, 0)


async def test_owners_with_characters_table_keys_forbid(limiter: PlanLimiter) -> None:
    owner = "team-a/b#c?d\\e"
    await limiter.credit(owner, 10)
    assert (await limiter.balance(owner)).available == 10
    assert (await limiter.balance("team-a")).available == 0


async def test_never_negative_under_50_concurrent_admits_on_two_instances(
    tables: Tables, settings: Settings, make_settings: Callable[..., Settings]
) -> None:
    other_tables = Tables(make_settings())  # a second instance: its own client, same tables
    first = PlanLimiter(tables, settings, background=False)
    second = PlanLimiter(other_tables, settings, background=False)
    try:
        await first.credit(OWNER, 1000)
        done = asyncio.Event()
        watcher = asyncio.create_task(watch_never_negative(first, done))
        outcomes = await asyncio.gather(
            *(admit(first if n % 2 else second, 30, n) for n in range(50)), return_exceptions=True
        )
        admitted = [o for o in outcomes if not isinstance(o, BaseException)]
        assert all(isinstance(o, InsufficientQuota) for o in outcomes if isinstance(o, BaseException))
        assert len(admitted) == 33  # 1000 // 30: every reserve that fits, and no more
        state = await first.balance(OWNER)
        assert (state.available, state.reserved) == (10, 990)
        actual = [45 if i % 3 == 0 else 20 for i in range(len(admitted))]  # some use more than they reserved
        await asyncio.gather(*(a.settle(plan_tokens=t) for a, t in zip(admitted, actual, strict=True)))
        done.set()
        assert await watcher >= 1
        state = await first.balance(OWNER)
        charged = sum(actual) - sum(a.shortfall for a in admitted)
        assert state.available >= 0 and state.reserved == 0
        assert state.available + charged == 1000
        assert state.shortfall == sum(a.shortfall for a in admitted)
    finally:
        await other_tables.close()


async def test_ten_instances_racing_on_one_balance_never_overdraw(tables: Tables, settings: Settings) -> None:
    # No group commit across instances: every batch is a compare-and-swap that can lose and must re-read.
    instances = [PrepaidBalances(tables.table(BALANCE_TABLE)) for _ in range(10)]
    await instances[0].credit(OWNER, 100)
    outcomes = await asyncio.gather(*(instances[n % 10].reserve(OWNER, 7) for n in range(50)), return_exceptions=True)
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 14
    assert all(isinstance(o, (int, InsufficientQuota)) for o in outcomes)
    state = await instances[0].get(OWNER)
    assert (state.available, state.reserved) == (2, 98)


async def watch_never_negative(limiter: PlanLimiter, done: asyncio.Event) -> int:
    reads = 0
    while not done.is_set():
        state = await limiter.balance(OWNER)
        assert state.available >= 0
        reads += 1
        await asyncio.sleep(0)
    return reads


class FlakyTable:
    """Wraps a TableClient; the next `fail` writes raise, before or after reaching storage."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.fail, self.landed = inner, 0, False
        self.gate: asyncio.Event | None = None

    def __getattr__(self, name: str) -> Any:
        async def call(*args: Any, **kwargs: Any) -> Any:
            if name in ("create_entity", "update_entity"):
                if self.gate is not None:
                    await self.gate.wait()
                if self.fail:
                    self.fail -= 1
                    if self.landed:
                        await getattr(self.inner, name)(*args, **kwargs)
                        raise ServiceResponseError("connection reset after the write")
                    raise ServiceRequestError("connection refused")
            return await getattr(self.inner, name)(*args, **kwargs)

        return call


@pytest.mark.parametrize("landed", [False, True])
async def test_a_settle_that_cannot_reach_storage_is_retried_exactly_once(
    tables: Tables, settings: Settings, landed: bool
) -> None:
    table = FlakyTable(tables.table(BALANCE_TABLE))
    balances = PrepaidBalances(table)  # type: ignore[arg-type]
    await balances.credit(OWNER, 500)
    reserved = await balances.reserve(OWNER, 200)
    table.fail, table.landed = 1, landed
    assert await balances.settle(OWNER, reserved, 50) == 0  # the caller moves on
    await balances.retry_deferred()
    await balances.close()
    state = await balances.get(OWNER)
    assert (state.available, state.reserved) == (450, 0)


@pytest.mark.parametrize("landed", [False, True])
async def test_a_reserve_whose_write_is_in_doubt_fails_closed_and_is_undone(
    tables: Tables, settings: Settings, landed: bool
) -> None:
    table = FlakyTable(tables.table(BALANCE_TABLE))
    balances = PrepaidBalances(table)  # type: ignore[arg-type]
    await balances.credit(OWNER, 500)
    table.fail, table.landed = 1, landed
    with pytest.raises(StorageUnavailable):
        await balances.reserve(OWNER, 200)
    await balances.retry_deferred()
    await balances.close()
    state = await balances.get(OWNER)
    assert (state.available, state.reserved) == (500, 0)


async def test_a_reserve_whose_caller_went_away_is_released(tables: Tables, settings: Settings) -> None:
    table = FlakyTable(tables.table(BALANCE_TABLE))
    balances = PrepaidBalances(table)  # type: ignore[arg-type]
    await balances.credit(OWNER, 500)
    table.gate = asyncio.Event()
    reserving = asyncio.create_task(balances.reserve(OWNER, 200))
    for _ in range(20):
        await asyncio.sleep(0)  # let the reserve reach the write
    reserving.cancel()
    table.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await reserving
    await balances.close()
    state = await balances.get(OWNER)
    assert (state.available, state.reserved) == (500, 0)


async def test_credit_added_through_another_instance_is_seen_by_the_next_reserve(tables: Tables) -> None:
    """An instance that remembers an empty balance reads it again before refusing: an operator's top-up goes
    through the admin API's instance, not the one serving the calls."""
    serving, operating = (PrepaidBalances(tables.table(BALANCE_TABLE)) for _ in range(2))
    with pytest.raises(InsufficientQuota):
        await serving.reserve("team-reread", 10)
    await serving.credit("team-reread", 5)  # this instance now remembers 5
    await operating.credit("team-reread", 100)
    assert await serving.reserve("team-reread", 50) == 50  # refused on the remembered 5, granted on the stored 105
