"""The metering job end to end: real Azurite, the stand-in's Metering Service, the real client, a fake clock."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from core.settings import Settings
from core.tables import Tables
from localdev.standin import start_in_thread
from localdev.standin.metering import MeteringStandin, metering_of
from metering.marketplace_client import MarketplaceClient
from metering.submit import MeteringDeps, RunReport, flush_deployment, submit_due
from provisioning.deployment_store import DeploymentStore
from tests.metering.submit_support import (
    CATALOG,
    DIMENSION,
    INCLUDED,
    UNIT,
    Clock,
    Customer,
    StandinCredential,
    add_customer,
    events_of,
    ledger_rows,
    prepare_tables,
    utc,
    write_usage,
)


@dataclass
class World:
    tables: Tables
    metering: MeteringStandin
    clock: Clock
    deps: MeteringDeps

    async def customer(self, plan_id: str = "payg", *, dimensions: tuple[str, ...] | None = None) -> Customer:
        customer = await add_customer(self.tables, plan_id=plan_id)
        plan = CATALOG.get(plan_id)
        if dimensions is None:
            dimensions = (plan.dimension,) if plan and plan.dimension else ()
        if dimensions:
            self.metering.register_resource(customer.resource_id, plan_id, dimensions)
        return customer

    async def use(self, customer: Customer, at: datetime, tokens: int, **options: str) -> None:
        await write_usage(self.tables, at, customer.deployment_id, tokens, plan_id=customer.plan_id, **options)

    async def run(self, **options: object) -> RunReport:
        return await submit_due(self.deps, **options)  # type: ignore[arg-type]

    def billed_tokens(self, customer: Customer, unit: int = UNIT) -> Decimal:
        plan = CATALOG.get(customer.plan_id)
        dimension = plan.dimension if plan and plan.dimension else DIMENSION
        return self.metering.total_quantity(customer.resource_id, dimension) * unit

    async def events(self, customer: Customer) -> list[tuple[str, int, str]]:
        return [
            (r["RowKey"][2:], r["tokens"].value, r["status"])
            for r in await events_of(self.tables, customer.resource_id)
        ]


@pytest.fixture
async def world(tables: Tables, make_settings: Callable[..., Settings]) -> AsyncIterator[World]:
    await prepare_tables(tables, make_settings())
    clock = Clock(utc(2026, 3, 10, 12, 5))
    with start_in_thread() as standin:
        metering = metering_of(standin.state)
        metering.clock = clock
        async with httpx.AsyncClient() as http:
            client = MarketplaceClient(http=http, credential=StandinCredential(standin), endpoint=standin.base_url)
            deps = MeteringDeps(
                tables=tables, deployments=DeploymentStore(tables), plans=CATALOG, client=client, clock=clock
            )
            yield World(tables, metering, clock, deps)


async def test_bills_the_overage_to_the_token_across_hours_and_a_month_boundary(world: World) -> None:
    world.clock.now = utc(2026, 3, 1, 2, 5)
    c = await world.customer()
    await world.use(c, utc(2026, 2, 28, 22, 10), 1_500, shard="aaaaaa")
    await world.use(c, utc(2026, 2, 28, 22, 50), 2_500, shard="bbbbbb")
    await world.use(c, utc(2026, 2, 28, 23, 20), 7_345)  # February: 11,345 used
    await world.use(c, utc(2026, 3, 1, 0, 30), 9_999)  # March starts afresh: nothing billable yet
    await world.use(c, utc(2026, 3, 1, 1, 59, 59), 1_002)  # March: 11,001 used
    report = await world.run()
    assert report.exit_code == 0
    assert await world.events(c) == [("2026022823", 1_345, "accepted"), ("2026030101", 1_001, "accepted")]

    world.clock.now = utc(2026, 3, 1, 3, 5)
    await world.use(c, utc(2026, 3, 1, 2, 10), 500)
    await world.use(c, utc(2026, 2, 28, 23, 50), 3_000)  # a late record of February, within the recount window
    await world.run()
    # The late tokens go into the first hour at or after theirs that has no event yet.
    assert await world.events(c) == [
        ("2026022823", 1_345, "accepted"),
        ("2026030100", 3_000, "accepted"),
        ("2026030101", 1_001, "accepted"),
        ("2026030102", 500, "accepted"),
    ]
    february, march = 4_000 + 7_345 + 3_000, 9_999 + 1_002 + 500
    assert world.billed_tokens(c) == (february - INCLUDED) + (march - INCLUDED)


async def test_a_duplicate_after_a_lost_response_counts_as_done(world: World) -> None:
    c = await world.customer()
    await world.use(c, utc(2026, 3, 10, 11, 15), 12_345)
    world.metering.fail_next(1, status=500, after_commit=True)
    first = await world.run()
    assert first.exit_code == 3 and await world.events(c) == [("2026031011", 2_345, "retry")]

    world.clock.advance(hours=1)
    second = await world.run()
    assert second.exit_code == 0 and await world.events(c) == [("2026031011", 2_345, "duplicate")]
    row = (await events_of(world.tables, c.resource_id))[0]
    assert (row["attempts"], row["mismatch"], row["accepted_quantity"]) == (2, False, "2.345")
    assert world.billed_tokens(c) == 2_345


async def test_a_duplicate_with_another_quantity_is_flagged(world: World, caplog: pytest.LogCaptureFixture) -> None:
    c = await world.customer()
    await world.use(c, utc(2026, 3, 10, 11, 15), 12_345)
    world.metering.evaluate(
        {
            "resourceId": c.resource_id,
            "quantity": 9.0,
            "dimension": DIMENSION,
            "effectiveStartTime": "2026-03-10T11:00:00Z",
            "planId": c.plan_id,
        }
    )
    with caplog.at_level(logging.ERROR, logger="metering.submit"):
        report = await world.run()
    row = (await events_of(world.tables, c.resource_id))[0]
    assert (row["status"], row["mismatch"], row["accepted_quantity"]) == ("duplicate", True, "9.0")
    assert report.summary()["mismatches"] == 1
    assert any("holds quantity 9.0" in r.getMessage() for r in caplog.records)


async def test_expired_usage_rolls_into_the_next_sendable_hour(world: World) -> None:
    world.clock.now = utc(2026, 3, 10, 10, 5)
    c = await world.customer()
    await world.use(c, utc(2026, 3, 10, 8, 15), 12_000)
    await world.use(c, utc(2026, 3, 10, 9, 15), 1_500)
    skewed = world.clock.now + timedelta(hours=22, minutes=30)  # the service sees 08:00 as expired
    world.metering.clock = lambda: skewed
    first = await world.run()
    assert first.rolled == 1
    assert await world.events(c) == [("2026031008", 2_000, "expired-rolled"), ("2026031009", 1_500, "accepted")]

    world.metering.clock = world.clock
    world.clock.advance(hours=1)
    await world.run()
    assert (await world.events(c))[-1] == ("2026031010", 2_000, "accepted")
    assert world.billed_tokens(c) == 3_500


async def test_usage_older_than_the_window_goes_into_the_first_sendable_hour(world: World) -> None:
    c = await world.customer()
    await world.use(c, utc(2026, 3, 9, 5, 10), 13_000)  # 31 hours before the run
    await world.use(c, utc(2026, 3, 10, 11, 10), 1_000)
    await world.run()
    assert await world.events(c) == [("2026030913", 3_000, "accepted"), ("2026031011", 1_000, "accepted")]


@pytest.mark.parametrize("status", [429, 503])
async def test_throttling_and_outages_are_retried_on_the_next_run(world: World, status: int) -> None:
    c = await world.customer()
    await world.use(c, utc(2026, 3, 10, 11, 15), 10_777)
    world.metering.fail_next(1, status=status)
    assert (await world.run()).exit_code == 3
    assert world.metering.accepted_events() == []

    world.clock.advance(hours=1)
    assert (await world.run()).exit_code == 0
    row = (await events_of(world.tables, c.resource_id))[0]
    assert (row["status"], row["attempts"]) == ("accepted", 2)
    assert world.billed_tokens(c) == 777


async def test_missed_runs_send_every_hour_on_its_own(world: World) -> None:
    c = await world.customer()
    world.clock.now = utc(2026, 3, 10, 7, 5)
    await world.use(c, utc(2026, 3, 10, 6, 0), INCLUDED)
    await world.run()
    for hour, tokens in zip(range(7, 12), (1_111, 2_222, 3_333, 4_444, 5_555), strict=True):
        await world.use(c, utc(2026, 3, 10, hour, 30), tokens)
    world.clock.now = utc(2026, 3, 10, 12, 5)  # the timer did not run for five hours
    report = await world.run()
    assert len(report.events) == 5
    assert await world.events(c) == [
        (f"20260310{h:02d}", t, "accepted")
        for h, t in zip(range(7, 12), (1_111, 2_222, 3_333, 4_444, 5_555), strict=True)
    ]


async def test_refused_events_are_surfaced_and_not_retried(world: World, caplog: pytest.LogCaptureFixture) -> None:
    unknown = await world.customer(dimensions=())
    wrong_dimension = await world.customer(dimensions=("other",))
    for c in (unknown, wrong_dimension):
        await world.use(c, utc(2026, 3, 10, 11, 15), 11_000)
    with caplog.at_level(logging.ERROR, logger="metering.submit"):
        report = await world.run()
    assert report.exit_code == 1
    assert sorted(r.status for r in report.results) == ["InvalidDimension", "ResourceNotFound"]
    assert sum("refused" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR) == 2
    calls = len(world.metering.calls)

    world.clock.advance(hours=1)
    assert (await world.run()).events == []
    assert len(world.metering.calls) == calls
    for c in (unknown, wrong_dimension):
        assert await world.events(c) == [("2026031011", 1_000, "error")]


async def test_flush_on_delete_sends_the_partial_hour_and_late_usage_follows(world: World) -> None:
    world.clock.now = utc(2026, 3, 10, 12, 20)
    c = await world.customer()
    await world.use(c, utc(2026, 3, 10, 11, 30), 12_000)
    await world.use(c, utc(2026, 3, 10, 12, 10), 700)
    report = await flush_deployment(world.deps, c.deployment_id)
    assert report.exit_code == 0
    assert await world.events(c) == [("2026031011", 2_000, "accepted"), ("2026031012", 700, "accepted")]

    await world.use(c, utc(2026, 3, 10, 12, 40), 300)  # arrived after the flush
    world.clock.now = utc(2026, 3, 10, 14, 5)
    await world.run()
    assert (await world.events(c))[-1] == ("2026031013", 300, "accepted")
    assert world.billed_tokens(c) == 3_000


async def test_dry_run_sends_and_writes_nothing(world: World) -> None:
    c = await world.customer()
    await world.use(c, utc(2026, 3, 10, 11, 15), 12_500)
    report = await world.run(dry_run=True)
    assert [(e.resource_id, e.quantity) for e in report.events] == [(c.resource_id, Decimal("2.5"))]
    assert report.results == [] and world.metering.calls == []
    assert await ledger_rows(world.tables) == []
    assert [e async for e in world.tables.table("meterhours").list_entities()] == []


async def test_concurrent_runs_bill_each_hour_once(world: World) -> None:
    c = await world.customer()
    for hour, tokens in ((9, 10_500), (10, 600), (11, 700)):
        await world.use(c, utc(2026, 3, 10, hour, 5), tokens)
    await asyncio.gather(world.run(), world.run(), world.run())
    assert [(h, t) for h, t, _ in await world.events(c)] == [
        ("2026031009", 500),
        ("2026031010", 600),
        ("2026031011", 700),
    ]
    assert world.billed_tokens(c) == 1_800


async def test_units_without_an_exact_decimal_carry_the_remainder(world: World) -> None:
    c = await world.customer("thirds")
    await world.use(c, utc(2026, 3, 10, 10, 15), 10)
    await world.use(c, utc(2026, 3, 10, 11, 15), 2)
    await world.run()
    assert [(h, t) for h, t, _ in await world.events(c)] == [("2026031010", 9), ("2026031011", 3)]
    assert world.billed_tokens(c, unit=3) == 12


async def test_block_plans_are_never_billed(world: World) -> None:
    c = await world.customer("capped")
    await world.use(c, utc(2026, 3, 10, 11, 15), 50_000)
    assert (await world.run()).events == []


async def test_an_hour_that_has_not_ended_is_refused(world: World) -> None:
    with pytest.raises(ValueError, match="has not ended"):
        await world.run(through=utc(2026, 3, 10, 12))


async def test_an_event_failing_for_a_whole_day_rolls_forward_once(world: World) -> None:
    c = await world.customer()
    await world.use(c, utc(2026, 3, 10, 11, 15), 10_777)
    world.metering.fail_next(1, status=503)
    await world.run()
    world.clock.advance(hours=24)  # the job was down: 11:00 yesterday can no longer be sent
    report = await world.run()
    assert report.rolled == 1
    assert await world.events(c) == [("2026031011", 777, "expired-rolled"), ("2026031013", 777, "accepted")]
    assert world.billed_tokens(c) == 777


async def test_flushing_an_unknown_deployment_does_nothing(world: World) -> None:
    report = await flush_deployment(world.deps, "0" * 64)
    assert report.events == [] and report.exit_code == 0


async def test_a_suspended_customer_is_still_billed_for_what_it_used(world: World) -> None:
    world.clock.now = utc(2026, 3, 1, 2, 5)
    c = await world.customer()
    await world.use(c, utc(2026, 3, 1, 0, 30), INCLUDED + 2_000)
    store = DeploymentStore(world.tables)
    record = await store.get(c.deployment_id)
    assert record is not None
    await store.replace(dataclasses.replace(record, suspended_at=world.clock.now, suspended_reason="unpaid"))
    assert (await world.run()).exit_code == 0
    assert await world.events(c) == [("2026030100", 2_000, "accepted")]
