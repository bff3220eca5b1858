"""Monthly included tokens: block at the limit, bill lets through, UTC months, instances converge through Azurite."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from azure.core.exceptions import ServiceRequestError

from core.errors import InsufficientQuota
from core.settings import Settings
from core.tables import Tables
from keystore.principal import Principal
from limits.limiter import QUOTA_TABLE, PlanLimiter
from limits.plans import Plan
from limits.quota import MonthlyQuota, month_of

ALICE = Principal(key_id="k1", key_prefix="lt-k1", key_hash="h1", team="t", plan_id="p", deployment_id="d1")
ALICE_2ND_KEY = Principal(key_id="k2", key_prefix="lt-k2", key_hash="h2", team="t", plan_id="p", deployment_id="d1")


class Now:
    def __init__(self) -> None:
        self.at = datetime(2025, 1, 31, 23, 59, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.at


def make_plan(**overrides: Any) -> Plan:
    values: dict[str, Any] = {"plan_id": "p", "models": ["m"], "monthly_included_tokens": 100}
    values.update(overrides)
    return Plan.model_validate(values)


@pytest.fixture
def now() -> Now:
    return Now()


@pytest.fixture
def new_limiter(tables: Tables, settings: Settings, now: Now) -> Callable[[], PlanLimiter]:
    return lambda: PlanLimiter(tables, settings, now=now, background=False)


async def use(limiter: PlanLimiter, plan: Plan, tokens: int, who: Principal = ALICE) -> None:
    admission = await limiter.admit(who, plan, model_alias="m", estimated_plan_tokens=tokens)
    await admission.settle(plan_tokens=tokens)


async def stored_used(tables: Tables, month: str, owner: str = "dep-d1") -> int | None:
    async for entity in tables.table(QUOTA_TABLE).query_entities(f"PartitionKey eq '{owner}' and RowKey eq '{month}'"):
        return int(getattr(entity["used"], "value", entity["used"]))
    return None


async def test_block_refuses_once_month_to_date_reaches_the_included_tokens(new_limiter: Any) -> None:
    limiter, plan = new_limiter(), make_plan()
    await use(limiter, plan, 60)
    await use(limiter, plan, 39, ALICE_2ND_KEY)  # keys of one deployment share its quota
    await use(limiter, plan, 1)  # 99 used: still under
    with pytest.raises(InsufficientQuota) as refused:
        await limiter.admit(ALICE, plan, model_alias="m", estimated_plan_tokens=1)
    error = refused.value
    assert error.status_code == 429
    assert error.body()["error"]["type"] == "insufficient_quota"
    assert error.body()["error"]["code"] == "insufficient_quota"
    assert error.headers["x-should-retry"] == "false"
    assert limiter.quota.used("dep-d1") == 100


async def test_bill_lets_usage_past_the_included_tokens(new_limiter: Any) -> None:
    limiter = new_limiter()
    plan = make_plan(overage="bill", dimension="tokens_1k")
    for _ in range(3):
        await use(limiter, plan, 80)
    assert limiter.quota.used("dep-d1") == 240


async def test_a_new_utc_month_starts_from_zero(new_limiter: Any, now: Now, tables: Tables) -> None:
    limiter, plan = new_limiter(), make_plan()
    await use(limiter, plan, 100)
    with pytest.raises(InsufficientQuota):
        await limiter.admit(ALICE, plan, model_alias="m", estimated_plan_tokens=1)
    now.at = datetime(2025, 2, 1, 0, 0, tzinfo=UTC)
    await use(limiter, plan, 30)
    await limiter.flush()
    assert await stored_used(tables, "2025-01") == 100
    assert await stored_used(tables, "2025-02") == 30


async def test_two_instances_converge_through_the_shared_counter(new_limiter: Any, tables: Tables) -> None:
    first, second, plan = new_limiter(), new_limiter(), make_plan()
    await use(first, plan, 70)
    await use(second, plan, 50)  # neither has seen the other yet: both admitted
    await asyncio.gather(first.flush(), second.flush())
    await asyncio.gather(first.flush(), second.flush())
    assert await stored_used(tables, "2025-01") == 120
    assert first.quota.used("dep-d1") == second.quota.used("dep-d1") == 120
    for limiter in (first, second):
        with pytest.raises(InsufficientQuota):
            await limiter.admit(ALICE, plan, model_alias="m", estimated_plan_tokens=1)


async def test_concurrent_flushes_lose_no_increment(tables: Tables, settings: Settings, now: Now) -> None:
    quotas = [MonthlyQuota(tables.table(QUOTA_TABLE), now=now) for _ in range(5)]
    for i, quota in enumerate(quotas):
        quota.add("dep-d1", i + 1)
    await asyncio.gather(*(q.sync() for q in quotas))
    assert await stored_used(tables, "2025-01") == 15


async def test_close_writes_pending_increments(new_limiter: Any, tables: Tables) -> None:
    limiter = new_limiter()
    await use(limiter, make_plan(), 42)
    assert await stored_used(tables, "2025-01") is None  # nothing written on the hot path
    await limiter.close()
    assert await stored_used(tables, "2025-01") == 42


class CountingTable:
    """Wraps a TableClient: counts round trips, and can be switched off like an outage."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls, self.down = inner, 0, False

    def __getattr__(self, name: str) -> Any:
        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.down:
                raise ServiceRequestError("connection refused")
            return await getattr(self.inner, name)(*args, **kwargs)

        return call


async def test_hot_path_reads_once_per_owner_and_month(tables: Tables, settings: Settings, now: Now) -> None:
    table = CountingTable(tables.table(QUOTA_TABLE))
    quota, plan = MonthlyQuota(table, now=now), make_plan(monthly_included_tokens=10**6)  # type: ignore[arg-type]
    for _ in range(100):
        await quota.check("dep-d1", plan)
        quota.add("dep-d1", 5)
    assert table.calls == 1
    await quota.sync()
    assert await stored_used(tables, "2025-01") == 500


async def test_storage_outage_lets_calls_through_and_catches_up(tables: Tables, settings: Settings, now: Now) -> None:
    table = CountingTable(tables.table(QUOTA_TABLE))
    quota, plan = MonthlyQuota(table, now=now), make_plan()  # type: ignore[arg-type]
    table.down = True
    await quota.check("dep-d1", plan)
    quota.add("dep-d1", 40)
    await quota.check("dep-d1", plan)
    await quota.sync()
    assert table.calls == 2  # one hot-path read, one sync attempt: no read per call during the outage
    table.down = False
    quota.add("dep-d1", 60)
    await quota.sync()
    assert await stored_used(tables, "2025-01") == 100
    with pytest.raises(InsufficientQuota):
        await quota.check("dep-d1", plan)


async def test_background_sync_writes_without_being_asked(
    tables: Tables, make_settings: Callable[..., Settings], settings: Settings, now: Now
) -> None:
    limiter = PlanLimiter(tables, make_settings(quota_sync_interval_seconds=0.01), now=now)
    try:
        await use(limiter, make_plan(), 7)
        for _ in range(500):
            if await stored_used(tables, "2025-01") == 7:
                break
            await asyncio.sleep(0.01)
        assert await stored_used(tables, "2025-01") == 7
    finally:
        await limiter.close()


async def test_plans_without_included_tokens_are_not_counted(new_limiter: Any, tables: Tables) -> None:
    limiter = new_limiter()
    await use(limiter, make_plan(monthly_included_tokens=None), 10**9)
    await limiter.flush()
    assert await stored_used(tables, "2025-01") is None


async def test_a_quota_refusal_carries_rate_headers_and_takes_no_request(new_limiter: Any) -> None:
    limiter, plan = new_limiter(), make_plan(monthly_included_tokens=0, rpm=5, tpm=1000)
    for _ in range(3):
        with pytest.raises(InsufficientQuota) as refused:
            await limiter.admit(ALICE, plan, model_alias="m", estimated_plan_tokens=10)
    assert refused.value.headers["x-ratelimit-remaining-requests"] == "5"
    assert refused.value.headers["x-ratelimit-remaining-tokens"] == "1000"
    assert refused.value.headers["x-should-retry"] == "false"


async def test_an_admission_carries_rate_headers_and_settles_once(new_limiter: Any) -> None:
    limiter, plan = new_limiter(), make_plan(rpm=5, tpm=1000)
    admission = await limiter.admit(ALICE, plan, model_alias="m", estimated_plan_tokens=300)
    assert admission.headers == {
        "x-ratelimit-limit-requests": "5",
        "x-ratelimit-remaining-requests": "4",
        "x-ratelimit-reset-requests": "12s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "700",
        "x-ratelimit-reset-tokens": "18s",
    }
    await admission.settle(plan_tokens=40)
    await admission.settle(plan_tokens=40)
    await admission.refund()
    assert limiter.quota.used("dep-d1") == 40
    nxt = await limiter.admit(ALICE, plan, model_alias="m", estimated_plan_tokens=0)
    assert nxt.headers["x-ratelimit-remaining-tokens"] == "960"


def test_months_are_utc_calendar_months() -> None:
    assert month_of(datetime(2025, 2, 1, 7, 59, tzinfo=timezone(timedelta(hours=8)))) == "2025-01"
    assert month_of(datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)) == "2025-12"
    assert month_of(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01"
