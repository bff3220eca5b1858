"""Verify usage aggregates: recount the raw rows of whole UTC hours and compare, group by group, with what is
stored: (a) each usage partition's own aggregate rows and header, (b) the copy in `usageagg` (usage.copy).

For disputes and audits, and to prove the aggregates on demand. It is the one reader whose cost grows with the
number of requests, on purpose: one query returning every raw row of the hours (only the columns counting
needs), one returning the partitions' aggregate and header rows, one of the copy (hours x shards x groups rows).
Verify completed hours: the reads are not one snapshot, so an hour still being written may show differences
that are only writes landing between them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from azure.data.tables.aio import TableClient

from core.hours import HOUR, hour_key, parse_hour_key
from core.tables import Tables, int_value, rows_of
from usage.copy import AggregateCopy
from usage.groups import (
    COUNTERS,
    GROUP_COLUMNS,
    REQUESTS,
    USAGE_COLUMNS,
    Counts,
    Group,
    add_usage,
    counters_of,
    group_of_row,
    group_order,
    zero,
)
from usage.store import AGGREGATE_PREFIX, HEADER, RAW_ROWS, partition_range, split_partition

Source = Literal["partition", "header", "copy"]
NOT_AGGREGATED = "not aggregated: run backfill"
DIFFERS = "differs"
ShardHour = tuple[str, str]  # (hour key, shard)


@dataclass(frozen=True)
class Difference:
    """One counter a stored source holds differently from the recount. `stored` None: the source has no
    row for the shard-hour at all (written before aggregates existed, or never copied)."""

    hour: datetime
    shard: str
    group: Group | None  # None: the shard-hour as a whole
    source: Source
    counter: str
    raw: int
    stored: int | None

    @property
    def problem(self) -> str:
        return NOT_AGGREGATED if self.stored is None else DIFFERS

    def view(self) -> dict[str, Any]:
        group = None if self.group is None else dict(zip(GROUP_COLUMNS, self.group, strict=True))
        return {
            "hour": self.hour.isoformat(), "shard": self.shard, "group": group, "source": self.source,
            "counter": self.counter, "raw": self.raw, "stored": self.stored, "problem": self.problem,
        }


@dataclass
class VerifyReport:
    first: datetime
    end: datetime
    partitions: int = 0  # usage partitions with raw rows or aggregates
    records: int = 0  # raw rows counted
    sealed: int = 0  # shard-hours whose raw rows retention deleted after sealing their copy: not compared
    differences: list[Difference] = field(default_factory=list)

    @property
    def hours(self) -> int:
        return int((self.end - self.first) / HOUR)

    @property
    def ok(self) -> bool:
        return not self.differences

    def summary(self) -> dict[str, Any]:
        return {
            "from": self.first.isoformat(), "to": self.end.isoformat(), "hours": self.hours,
            "partitions": self.partitions, "records": self.records, "sealed": self.sealed,
            "differences": len(self.differences), "ok": self.ok,
        }


@dataclass
class _Stored:
    """What one shard-hour holds besides its raw rows."""

    aggregates: Counts = field(default_factory=dict)
    header: int | None = None  # the partition header's `requests`
    copied: bool = False  # the copy has a row for the shard-hour
    sealed: bool = False
    copy: Counts = field(default_factory=dict)


async def verify_usage(tables: Tables, first: datetime, end: datetime) -> VerifyReport:
    """Recount the raw rows of the whole UTC hours [first, end) and compare; raises StorageUnavailable."""
    first, end = whole_hours(first, end)
    usage = tables.table("usage")
    lo, hi = partition_range(first, end)
    raw, records = await _recount(usage, lo, hi)
    stored: dict[ShardHour, _Stored] = {}
    await _read_partitions(usage, lo, hi, stored)
    await _read_copy(AggregateCopy(tables), hour_key(first), hour_key(end), stored)
    report = VerifyReport(first, end, records=records)
    for key in sorted(raw.keys() | stored.keys()):
        held = stored.get(key) or _Stored()
        report.partitions += key in raw or bool(held.aggregates) or held.header is not None
        if held.sealed:
            report.sealed += 1
            continue
        report.differences += _compare(key, raw.get(key, {}), held)
    return report


def whole_hours(first: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The range in UTC; ValueError unless it is one or more whole hours."""
    if first.tzinfo is None or end.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    first, end = first.astimezone(UTC), end.astimezone(UTC)
    if first.minute or first.second or first.microsecond or end.minute or end.second or end.microsecond:
        raise ValueError("verify and backfill whole UTC hours")
    if end <= first:
        raise ValueError("the end must be later than the first hour")
    return first, end


async def _recount(usage: TableClient, lo: str, hi: str) -> tuple[dict[ShardHour, Counts], int]:
    counts: dict[ShardHour, Counts] = {}
    records = 0
    query = f"PartitionKey ge @lo and PartitionKey lt @hi and {RAW_ROWS}"
    select = ["PartitionKey", *USAGE_COLUMNS, *GROUP_COLUMNS]
    async for row in rows_of(usage, query, {"lo": lo, "hi": hi}, select):
        groups = counts.setdefault(split_partition(row["PartitionKey"]), {})
        add_usage(groups.setdefault(group_of_row(row), zero()), row)
        records += 1
    return counts, records


async def _read_partitions(usage: TableClient, lo: str, hi: str, stored: dict[ShardHour, _Stored]) -> None:
    query = "PartitionKey ge @lo and PartitionKey lt @hi and RowKey ge @aggregates"
    select = ["PartitionKey", "RowKey", *GROUP_COLUMNS, *COUNTERS]
    async for row in rows_of(usage, query, {"lo": lo, "hi": hi, "aggregates": "~"}, select):
        held = stored.setdefault(split_partition(row["PartitionKey"]), _Stored())
        if row["RowKey"] == HEADER:
            held.header = int_value(row.get("requests"))
        elif row["RowKey"].startswith(AGGREGATE_PREFIX):
            held.aggregates[group_of_row(row)] = counters_of(row)


async def _read_copy(copy: AggregateCopy, lo: str, hi: str, stored: dict[ShardHour, _Stored]) -> None:
    for key, copied in (await copy.read(lo, hi)).items():
        held = stored.setdefault(key, _Stored())
        held.copied, held.sealed, held.copy = True, copied.sealed, copied.counts


def _compare(key: ShardHour, raw: Counts, held: _Stored) -> list[Difference]:
    hour, shard = parse_hour_key(key[0]), key[1]
    requests = sum(counters[REQUESTS] for counters in raw.values())
    differences: list[Difference] = []
    if held.header != requests and (held.header is not None or requests):
        differences.append(Difference(hour, shard, None, "header", "requests", requests, held.header))
    if held.header is not None or held.aggregates:  # no header and no rows: one "not aggregated" above says it
        differences += _per_group(hour, shard, "partition", raw, held.aggregates)
    if not held.copied and requests:
        differences.append(Difference(hour, shard, None, "copy", "requests", requests, None))
    elif held.copied:
        differences += _per_group(hour, shard, "copy", raw, held.copy)
    return differences


def _per_group(hour: datetime, shard: str, source: Source, raw: Counts, stored: Counts) -> Iterator[Difference]:
    for group in _ordered(raw.keys() | stored.keys()):
        counted, held = raw.get(group) or zero(), stored.get(group) or zero()
        for name, expected, actual in zip(COUNTERS, counted, held, strict=True):
            if expected != actual:
                yield Difference(hour, shard, group, source, name, expected, actual)


def _ordered(groups: Iterable[Group]) -> list[Group]:
    return sorted(groups, key=group_order)
