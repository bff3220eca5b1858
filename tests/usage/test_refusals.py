"""Refused-call counters: per hour, owner, key, status and code; each instance owns its rows; bounded groups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.errors import StorageUnavailable
from core.tables import Tables
from usage import refusals
from usage.refusals import MALFORMED, OTHER, RefusalCount, RefusalCounter, key_reference, read_refusals

AT = datetime(2026, 12, 5, 10, 15, tzinfo=UTC)
HOUR = AT.replace(minute=0)


def test_an_unresolved_key_is_known_by_a_hash_of_its_prefix_only() -> None:
    ref = key_reference("lt-AbCdEf")
    assert ref.startswith("p-") and len(ref) == 18 and "AbCdEf" not in ref
    assert key_reference("lt-AbCdEf") == ref != key_reference("lt-AbCdEg")
    assert key_reference(None) == MALFORMED


async def test_two_instances_count_apart_and_readers_sum_them(tables: Tables) -> None:
    one, two = RefusalCounter(tables, background=False), RefusalCounter(tables, background=False)
    for _ in range(3):
        one.record(AT, owner="team-a", key="k1", status=429, code="rate_limit_exceeded")
    two.record(AT, owner="team-a", key="k1", status=429, code="rate_limit_exceeded")
    two.record(AT + timedelta(hours=1), owner=None, key="p-0011", status=401, code="invalid_api_key")
    await one.flush()
    await two.flush()
    one.record(AT, owner="team-a", key="k1", status=429, code="rate_limit_exceeded")
    await one.flush()  # replaces its own row with the new total: no double count
    await one.flush()  # nothing changed: nothing written
    found = await read_refusals(tables, HOUR, HOUR + timedelta(hours=2))
    assert found == [
        RefusalCount(HOUR, "team-a", "k1", 429, "rate_limit_exceeded", 5),
        RefusalCount(HOUR + timedelta(hours=1), "-", "p-0011", 401, "invalid_api_key", 1),
    ]
    assert await read_refusals(tables, HOUR + timedelta(hours=1), HOUR + timedelta(hours=2)) == found[1:]


async def test_a_flood_of_distinct_keys_is_bounded(tables: Tables, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(refusals, "MAX_GROUPS", 3)
    counter = RefusalCounter(tables, background=False)
    for i in range(250):
        counter.record(AT, owner=None, key=f"p-{i:04d}", status=401, code="invalid_api_key")
    await counter.flush()
    found = await read_refusals(tables, HOUR, HOUR + timedelta(hours=1))
    assert [(r.key, r.count) for r in found] == [(OTHER, 247), ("p-0000", 1), ("p-0001", 1), ("p-0002", 1)]


async def test_a_failed_flush_keeps_every_count_for_the_next(tables: Tables, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = RefusalCounter(tables, background=False)
    for i in range(150):  # two transactions' worth
        counter.record(AT, owner="team-b", key=f"k{i:03d}", status=403, code="model_not_found")
    real_write = counter._write

    async def failing(hour: str, groups: list[tuple[str, str, int, str]]) -> None:
        raise StorageUnavailable("down")

    monkeypatch.setattr(counter, "_write", failing)
    with pytest.raises(StorageUnavailable):
        await counter.flush()
    monkeypatch.setattr(counter, "_write", real_write)
    await counter.flush()
    found = await read_refusals(tables, HOUR, HOUR + timedelta(hours=1))
    assert len(found) == 150 and {r.count for r in found} == {1}
