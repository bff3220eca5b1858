"""Checks shared by the usage tests: the aggregates against a recount of the raw rows they count."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from core.hours import HOUR, parse_hour_key
from core.settings import Settings
from core.tables import Tables, int_value, table_name
from usage.groups import GROUP_COLUMNS, USAGE_COLUMNS, Counts, Group, add_usage, counters_of, group_of_row, zero
from usage.reader import read_aggregates
from usage.store import AGGREGATE_PREFIX, HEADER, RAW_ROWS

USAGE_TABLES = ("usage", "usageagg")


async def create_usage_tables(tables: Tables, settings: Settings) -> None:
    for logical in USAGE_TABLES:
        await tables.service.create_table_if_not_exists(table_name(settings, logical))


async def recount(tables: Tables) -> dict[str, Counts]:
    """Every partition's raw rows, counted."""
    counts: dict[str, Counts] = defaultdict(dict)
    select = ["PartitionKey", *USAGE_COLUMNS, *GROUP_COLUMNS]
    async for row in tables.table("usage").query_entities(RAW_ROWS, select=select):
        add_usage(counts[row["PartitionKey"]].setdefault(group_of_row(row), zero()), row)
    return counts


async def stored_aggregates(tables: Tables) -> tuple[dict[str, Counts], dict[str, int]]:
    """Every partition's aggregate rows, and the requests its header counts."""
    counts: dict[str, Counts] = defaultdict(dict)
    headers: dict[str, int] = {}
    async for row in tables.table("usage").query_entities("RowKey ge '~'"):
        if row["RowKey"].startswith(AGGREGATE_PREFIX):
            counts[row["PartitionKey"]][group_of_row(row)] = counters_of(row)
        elif row["RowKey"] == HEADER:
            headers[row["PartitionKey"]] = int_value(row.get("requests"))
    return counts, headers


def per_hour(counts: dict[str, Counts]) -> dict[tuple[datetime, Group], list[int]]:
    totals: dict[tuple[datetime, Group], list[int]] = {}
    for partition, groups in counts.items():
        hour = parse_hour_key(partition.split("-", 1)[0])
        for group, counters in groups.items():
            total = totals.setdefault((hour, group), zero())
            for index, value in enumerate(counters):
                total[index] += value
    return totals


async def assert_consistent(tables: Tables) -> int:
    """Aggregates == recount in every partition, headers too, and the reader agrees; the records counted."""
    raw = await recount(tables)
    stored, headers = await stored_aggregates(tables)
    assert {p: g for p, g in stored.items() if g} == {p: g for p, g in raw.items() if g}
    for partition, groups in raw.items():
        assert headers.get(partition) == sum(c[0] for c in groups.values()), partition
    expected = per_hour(raw)
    if expected:
        hours = [hour for hour, _ in expected]
        rows, _ = await read_aggregates(tables, min(hours), max(hours) + HOUR)
        assert {(row.hour, row.group): list(row.counters) for row in rows} == expected
    return sum(c[0] for groups in raw.values() for c in groups.values())
