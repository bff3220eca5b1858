"""The aggregate copy's packed rows: what is written is read back, across several rows, and a copy that mixes
writes is never taken for a current one (real Azurite)."""

from __future__ import annotations

from collections.abc import Callable

from azure.data.tables import UpdateMode

from core.settings import Settings
from core.tables import Tables
from tests.usage.support import create_usage_tables
from usage.copy import AggregateCopy, decode, encode
from usage.groups import COUNTERS, Counts

HOUR = "2031010203"


def counts_of(size: int, *, scale: int = 1) -> Counts:
    return {
        (f"team-{i % 97}", None if i % 3 else f"dep-{i}", "plan", f"model-{i % 5}", f"key-{i}-é😀"):
        [scale * (i + 1), i % 2, *(scale * (i + j) for j in range(len(COUNTERS) - 2))]
        for i in range(size)
    }


def test_encode_then_decode_gives_the_counts_back() -> None:
    counts = counts_of(50)
    [row] = encode(HOUR, "s1", counts, version=3, requests=99, sealed=True)
    assert row["RowKey"] == "s1" and row["parts"] == 1 and row["sealed"] is True
    assert dict(decode(row) or []) == counts


def test_a_copy_written_before_the_later_counters_reads_them_as_zero() -> None:
    older = COUNTERS.index("reasoning_tokens")  # the eight counters copies held before
    row = {"d0": '[["team-a",null,"plan","m","k",3,1,10,2,20,30,40,1]]'}
    [(group, counters)] = decode(row) or []
    assert group == ("team-a", None, "plan", "m", "k")
    assert counters[:older] == [3, 1, 10, 2, 20, 30, 40, 1] and counters[older:] == [0] * (len(COUNTERS) - older)
    assert decode({"d0": '[["team-a",null,"plan","m","k",3,1,10]]'}) is None  # too short: not trusted


async def test_many_groups_span_several_rows_and_read_back(
    tables: Tables, make_settings: Callable[..., Settings]
) -> None:
    await create_usage_tables(tables, make_settings())
    counts = counts_of(6_000)
    rows = encode(HOUR, "s1", counts, version=7, requests=1, sealed=False)
    assert len(rows) > 1 and [row["RowKey"] for row in rows[1:]] == [f"s1|{i}" for i in range(1, len(rows))]
    assert all(len(value) <= 15_000 for row in rows for value in row.values() if isinstance(value, str))
    copy = AggregateCopy(tables)
    await copy.write(HOUR, "s1", counts, version=7, requests=1)
    [read] = (await copy.read(HOUR, HOUR + "~")).values()
    assert read.counts == counts and read.consistent and read.version == 7

    # A shorter copy later: the rows past its `parts` are left over and ignored.
    fewer = dict(list(counts.items())[:10])
    await copy.write(HOUR, "s1", fewer, version=8, requests=1)
    [read] = (await copy.read(HOUR, HOUR + "~")).values()
    assert read.counts == fewer and read.consistent


async def test_a_copy_mixing_two_writes_is_not_consistent(
    tables: Tables, make_settings: Callable[..., Settings]
) -> None:
    await create_usage_tables(tables, make_settings())
    copy = AggregateCopy(tables)
    counts = counts_of(6_000)
    await copy.write(HOUR, "s2", counts, version=1, requests=1)
    # A part missing (stale parts are caught by the reader's requests check against the partition header).
    await copy.table.delete_entity(HOUR, "s2|1")
    [read] = (await copy.read(HOUR, HOUR + "~")).values()
    assert not read.consistent
    # A group in two rows: counted twice unless the copy is refused.
    rows = encode(HOUR, "s2", counts, version=1, requests=1, sealed=False)
    first, counters = (decode(rows[0]) or [])[0]  # a group of the first row, written into the second
    duplicate = encode(HOUR, "s2", {first: counters}, version=1, requests=1, sealed=False)[0]
    duplicate = {k: v for k, v in duplicate.items() if k.startswith("d")}
    await copy.table.upsert_entity({"PartitionKey": HOUR, "RowKey": "s2|1", **duplicate}, mode=UpdateMode.REPLACE)
    [read] = (await copy.read(HOUR, HOUR + "~")).values()
    assert not read.consistent
    # Text that is not the copy's JSON.
    await copy.table.upsert_entity({"PartitionKey": HOUR, "RowKey": "s2|1", "d0": "[[1,"}, mode=UpdateMode.REPLACE)
    [read] = (await copy.read(HOUR, HOUR + "~")).values()
    assert not read.consistent


async def test_a_registered_shard_hour_reads_as_an_empty_current_copy(
    tables: Tables, make_settings: Callable[..., Settings]
) -> None:
    await create_usage_tables(tables, make_settings())
    copy = AggregateCopy(tables)
    await copy.register(HOUR, "s3")
    [read] = (await copy.read(HOUR, HOUR + "~")).values()
    assert (read.counts, read.consistent, read.requests, read.sealed) == ({}, True, 0, False)
