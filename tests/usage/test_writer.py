"""UsageWriter against real Azurite: batching, async/sync modes, journal spill and replay."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ServiceRequestError
from azure.core.pipeline.transport import AioHttpTransport

from core.errors import StorageUnavailable
from core.settings import Settings
from core.tables import Tables
from tests.usage.support import create_usage_tables
from usage import journal as usage_journal
from usage.records import UsageRecord
from usage.store import RAW_ROWS, UsageStore, raw_row_op, row_key, to_entity
from usage.writer import UsageWriter

FIELDS = {field.name for field in dataclasses.fields(UsageRecord)}


class CountingTransport(AioHttpTransport):
    """Counts $batch requests to the usage table on the wire and the records in each (without the aggregate
    rows and the header that every transaction also carries)."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    async def send(self, request: Any, **kwargs: Any) -> Any:
        content = request.content or request.body or b""
        body = content.encode() if isinstance(content, str) else bytes(content)
        if request.url.endswith("/$batch") and b"usageagg" not in body:
            self.batches.append(body.count(b"Content-ID:") - body.count(b'"RowKey":"~'))
        return await super().send(request, **kwargs)


class DownTransport(AioHttpTransport):
    async def send(self, request: Any, **kwargs: Any) -> Any:
        raise ServiceRequestError("connection refused")


def make_record(at: datetime | None = None, **overrides: Any) -> UsageRecord:
    values: dict[str, Any] = {
        "request_id": "req" + uuid.uuid4().hex,
        "at": at or datetime.now(UTC),
        "team": "team-a",
        "key_id": "key-1",
        "plan_id": "plan-basic",
        "model_alias": "gpt-test",
        "endpoint": "/v1/chat/completions",
        "status": 200,
        "latency_ms": 12,
        "prompt_tokens": 10,
        "cached_tokens": 2,
        "completion_tokens": 5,
        "total_tokens": 15,
        "plan_tokens": 15,
        "deployment_id": "dep-1",
    }
    values.update(overrides)
    return UsageRecord(**values)


@pytest.fixture
def usage_settings(make_settings: Callable[..., Settings], tmp_path: Path) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        return make_settings(usage_journal_dir=str(tmp_path / "journal"), **overrides)

    return build


@pytest.fixture
def transport() -> CountingTransport:
    return CountingTransport()


@pytest.fixture
async def usage_tables(usage_settings: Callable[..., Settings], transport: CountingTransport) -> AsyncIterator[Tables]:
    store = Tables(usage_settings(), transport=transport)
    await create_usage_tables(store, usage_settings())
    try:
        yield store
    finally:
        await store.close()


async def rows(tables: Tables) -> list[dict[str, Any]]:
    return [entity async for entity in tables.table("usage").query_entities(RAW_ROWS)]


def writer_for(tables: Tables, settings: Settings, **options: Any) -> UsageWriter:
    return UsageWriter(tables=tables, settings=settings, **options)


async def test_full_batches_fill_one_partition(usage_tables: Tables, usage_settings: Any, transport: Any) -> None:
    writer = writer_for(usage_tables, usage_settings(usage_flush_interval_ms=60_000))
    at = datetime(2030, 5, 6, 7, 8, 9, tzinfo=UTC)
    records = [make_record(at + timedelta(microseconds=i)) for i in range(250)]
    for record in records:
        await writer.record(record)
    await writer.close()

    assert transport.batches == [98, 98, 54]  # with one aggregate row and the header: 100 entities
    stored = await rows(usage_tables)
    assert {row["PartitionKey"] for row in stored} == {f"2030050607-{writer.shard}"}
    assert sorted(row["RowKey"] for row in stored) == sorted(row_key(record) for record in records)


async def test_async_record_does_no_io_and_flushes_within_the_interval(
    usage_tables: Tables, usage_settings: Any, transport: Any
) -> None:
    writer = writer_for(usage_tables, usage_settings(usage_flush_interval_ms=50))
    await writer.flush()  # the start-up replay is done; from here on only records cause I/O
    record = make_record()
    call = writer.record(record)
    with pytest.raises(StopIteration):
        call.send(None)  # completed without ever suspending: no I/O on the hot path
    assert transport.batches == []

    await _wait_for(lambda: writer.stats.committed == 1, seconds=2)
    assert transport.batches == [1]
    [row] = await rows(usage_tables)
    assert row["RowKey"] == row_key(record)
    await writer.close()


async def test_sync_mode_group_commits_concurrent_records(
    usage_tables: Tables, usage_settings: Any, transport: Any
) -> None:
    writer = writer_for(usage_tables, usage_settings(usage_durability="sync"))
    records = [make_record() for _ in range(50)]
    await asyncio.gather(*(writer.record(record) for record in records))

    assert len(await rows(usage_tables)) == 50  # committed before record() returned
    assert sum(transport.batches) == 50
    assert len(transport.batches) <= 3
    await writer.close()


@pytest.mark.parametrize(
    ("at", "request_id"),
    [
        (None, None),
        (datetime(2026, 11, 23, 2, 30, 0, tzinfo=UTC), "req it's: 50% done"),  # whole second; key to quote
        (datetime(2026, 11, 23, 2, 30, 1, 999), "req-naive-at"),  # naive = UTC
    ],
)
async def test_entity_and_raw_row_op_hold_every_field_and_match_the_sdk_encoding(
    usage_tables: Tables, usage_settings: Any, at: datetime | None, request_id: str | None
) -> None:
    record = make_record(at, resource_usage_id=None, estimated=True, unit="character", quantity=12, auto=True,
                         byok=True)
    if request_id is not None:
        record = dataclasses.replace(record, request_id=request_id)
    entity = to_entity(record, "fast01")
    await UsageStore(usage_tables.table("usage")).commit([entity])
    await UsageStore(usage_tables.table("usage"), use_sdk=True).commit([{**entity, "PartitionKey": "sdk"}])
    raw = raw_row_op(record, "raw01")  # the writer's path: encoded once
    assert raw.kind == "insert" and raw.entity == {**entity, "PartitionKey": "raw01"}
    await UsageStore(usage_tables.table("usage")).apply([raw])

    fast, raw_row, sdk = sorted(await rows(usage_tables), key=lambda row: row["PartitionKey"])
    assert set(fast) == FIELDS - {"resource_usage_id"} | {"PartitionKey", "RowKey"}
    fast.pop("PartitionKey"), raw_row.pop("PartitionKey"), sdk.pop("PartitionKey")
    assert fast == sdk
    assert raw_row == sdk
    assert fast["at"] == record.at.replace(tzinfo=UTC) and fast["estimated"] is True and fast["total_tokens"] == 15
    assert fast["RowKey"] == row_key(record) and fast["request_id"] == record.request_id


async def test_a_rejected_transaction_raises(usage_tables: Tables) -> None:
    good = to_entity(make_record(), "shard1")
    with pytest.raises(StorageUnavailable):
        await UsageStore(usage_tables.table("usage")).commit([good, {**good, "RowKey": "bad#key"}])
    assert await rows(usage_tables) == []  # all or nothing


async def test_close_flushes_pending_records(usage_tables: Tables, usage_settings: Any) -> None:
    writer = writer_for(usage_tables, usage_settings(usage_flush_interval_ms=60_000))
    for _ in range(30):
        await writer.record(make_record())
    assert await rows(usage_tables) == []
    await writer.close()
    assert len(await rows(usage_tables)) == 30
    assert not writer.journal_path.exists()
    with pytest.raises(RuntimeError):
        await writer.record(make_record())


async def test_unreachable_storage_spills_metadata_only_and_replay_is_idempotent(
    usage_tables: Tables, usage_settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(usage_journal, "_CHUNK", 1000)  # replay in several chunks
    dead = Tables(usage_settings(), transport=DownTransport())  # same endpoint, nothing gets through
    spilling = writer_for(dead, usage_settings(usage_durability="sync"), timeout_seconds=1)
    records = [make_record() for _ in range(120)]
    for record in records:
        await spilling.record(record)  # returns once journaled (fsync'd)
    journal = spilling.journal_path
    await spilling.close()
    await dead.close()
    assert spilling.stats.spilled == 120 and spilling.stats.committed == 0

    lines = journal.read_bytes().splitlines()
    assert len(lines) == 120
    assert all(set(json.loads(line)) == FIELDS for line in lines)
    copy = shutil.copy(journal, tmp_path / "journal-copy")

    replaying = writer_for(usage_tables, usage_settings())
    await replaying.flush()  # adopts the dead writer's journal
    assert not journal.exists()
    shutil.copy(copy, journal)  # as if the commit had succeeded but the delete had not
    await replaying.close()

    stored = await rows(usage_tables)
    assert sorted(row["RowKey"] for row in stored) == sorted(row_key(record) for record in records)
    assert {row["PartitionKey"].rsplit("-", 1)[1] for row in stored} == {spilling.shard}
    assert replaying.stats.replayed == 240 and not journal.exists()


async def test_invalid_request_id_is_refused_at_the_call(usage_tables: Tables, usage_settings: Any) -> None:
    writer = writer_for(usage_tables, usage_settings())
    with pytest.raises(ValueError):
        await writer.record(make_record(request_id="a/b"))
    with pytest.raises(ValueError):
        await writer.record(make_record(total_tokens=2**31))
    await writer.close()


async def _wait_for(condition: Callable[[], bool], *, seconds: float) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")
