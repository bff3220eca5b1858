"""Roll-up: overage arithmetic, quantities, and counting usage rows in real Azurite."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest

from core.hours import HOUR, floor_hour, previous_month_start
from core.settings import Settings
from core.tables import Tables, table_key
from metering.rollup import HourlyTotals, HourTotal, billable_through, count_hours, merge_totals, quantity_for
from tests.metering.submit_support import CATALOG, DIMENSION, INCLUDED, PAYG, prepare_tables, utc, write_usage


def test_billable_is_the_overage_and_telescopes_across_hours() -> None:
    start = utc(2026, 3, 1, 0)
    hours = [(start + i * HOUR, tokens) for i, tokens in enumerate([4_000, 5_000, 3_217, 0, 1_002])]
    cumulative = [billable_through(hours, INCLUDED, h) for h, _ in hours]
    assert cumulative == [0, 0, 2_217, 2_217, 3_219]
    per_hour = [b - a for a, b in zip([0, *cumulative], cumulative, strict=False)]
    assert sum(per_hour) == sum(t for _, t in hours) - INCLUDED


@pytest.mark.parametrize(
    ("tokens", "unit", "quantity", "covered"),
    [
        (1_345, 1_000, Decimal("1.345"), 1_345),
        (1, 1_000, Decimal("0.001"), 1),
        (7, 1_000_000, Decimal("0.000007"), 7),
        (10, 3, Decimal("3"), 9),  # 1 token carried: 10/3 has no exact 6-decimal form
        (2, 3, Decimal("0"), 0),  # nothing sendable without losing a fraction: carried whole
        (2, 1, Decimal("2"), 2),
    ],
)
def test_quantity_never_exceeds_and_reports_what_it_covers(
    tokens: int, unit: int, quantity: Decimal, covered: int
) -> None:
    got, got_covered = quantity_for(tokens, unit)
    assert got_covered == covered
    if covered:
        assert got == quantity and got * unit == covered


def test_time_helpers() -> None:
    assert floor_hour(utc(2026, 3, 1, 0, 59, 59)) == utc(2026, 3, 1, 0)
    assert previous_month_start(utc(2026, 3, 1, 0)) == utc(2026, 2, 1)
    assert previous_month_start(utc(2026, 1, 15, 7)) == utc(2025, 12, 1)
    with pytest.raises(ValueError):
        floor_hour(utc(2026, 1, 1).replace(tzinfo=None))


def test_table_key_keeps_plain_ids_and_hashes_the_rest() -> None:
    assert table_key("payg-2024_v1") == "payg-2024_v1"
    hashed = table_key("plan/with#bad?chars")
    assert hashed.startswith("h") and "/" not in hashed and hashed == table_key("plan/with#bad?chars")


async def test_count_hours_sums_plan_tokens_across_shards(
    tables: Tables, make_settings: Callable[..., Settings]
) -> None:
    await prepare_tables(tables, make_settings())
    hour = utc(2026, 3, 1, 10)
    await write_usage(tables, hour + timedelta(minutes=1), "dep-a", 1_500, shard="aaaaaa")
    await write_usage(tables, hour + timedelta(minutes=59, seconds=59), "dep-a", 2_500, shard="bbbbbb")
    await write_usage(tables, hour + timedelta(minutes=5), "dep-b", 700)
    await write_usage(tables, hour + timedelta(minutes=5), "dep-a", 999, plan_id="capped")  # overage "block"
    await write_usage(tables, hour + timedelta(minutes=5), None, 5_000)  # operator team, no deployment
    await write_usage(tables, hour + HOUR, "dep-a", 11)  # next hour
    await write_usage(tables, hour - HOUR, "dep-a", 13)  # previous hour

    totals = await count_hours(tables, hour, hour, CATALOG)
    assert totals == [
        HourTotal("dep-a", PAYG, DIMENSION, hour, 4_000),
        HourTotal("dep-b", PAYG, DIMENSION, hour, 700),
    ]
    ranged = await count_hours(tables, hour - HOUR, hour + HOUR, CATALOG, deployment_id="dep-a")
    assert [(t.hour, t.tokens) for t in ranged] == [(hour - HOUR, 13), (hour, 4_000), (hour + HOUR, 11)]


async def test_hourly_totals_only_grow(tables: Tables, make_settings: Callable[..., Settings]) -> None:
    await prepare_tables(tables, make_settings())
    store = HourlyTotals(tables)
    hour = utc(2026, 3, 1, 10)
    now = utc(2026, 3, 1, 11, 5)
    big = HourTotal("dep-a", PAYG, DIMENSION, hour, 3_000_000_000)  # beyond Int32
    await store.raise_to(big, now=now)
    await store.raise_to(HourTotal("dep-a", PAYG, DIMENSION, hour, 5), now=now)  # a stale, smaller recount
    await store.raise_to(HourTotal("dep-a", PAYG, DIMENSION, hour + HOUR, 7), now=now)
    rows = await store.rows("dep-a", utc(2026, 3, 1), hour)
    assert rows == [big]
    assert [r.tokens for r in await store.rows("dep-a", utc(2026, 3, 1), hour + HOUR)] == [3_000_000_000, 7]

    assert await store.watermark() is None
    await store.advance_watermark(hour)
    await store.advance_watermark(hour - HOUR)
    assert await store.watermark() == hour


def test_merge_totals_keeps_the_larger_count() -> None:
    hour = utc(2026, 3, 1, 10)
    stored = [HourTotal("d", PAYG, DIMENSION, hour, 10)]
    fresh = [HourTotal("d", PAYG, DIMENSION, hour, 4), HourTotal("d", PAYG, DIMENSION, hour + HOUR, 3)]
    assert [t.tokens for t in merge_totals(stored, fresh)] == [10, 3]
