"""Storage outage: Azurite stops mid-load and comes back; every acknowledged record arrives once."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings
from core.tables import Tables
from localdev import azurite
from tests.usage.support import assert_consistent, create_usage_tables
from usage.records import UsageRecord
from usage.store import RAW_ROWS, row_key
from usage.writer import UsageWriter


class OwnAzurite:
    """An Azurite of our own that keeps its data on disk across a stop and a restart."""

    def __init__(self, location: Path) -> None:
        self.location = location
        self.port = azurite.free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = azurite.start_azurite(port=self.port, location=self.location)

    def stop(self) -> None:
        assert self.process is not None
        # SIGINT is Azurite's graceful exit: it saves its database (SIGTERM would drop recent writes).
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=10)
        finally:
            azurite.stop(self.process)


@pytest.fixture
def own_azurite(tmp_path: Path) -> Iterator[OwnAzurite]:
    server = OwnAzurite(tmp_path / "azurite")
    server.location.mkdir()
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            azurite.stop(server.process)


def make_record(number: int) -> UsageRecord:
    return UsageRecord(
        request_id=f"req{number:06d}-{uuid.uuid4().hex[:8]}",
        at=datetime.now(UTC),
        team="team-a",
        key_id="key-1",
        plan_id="plan-basic",
        model_alias="gpt-test",
        endpoint="/v1/chat/completions",
        status=200,
        latency_ms=3,
        prompt_tokens=number,
        total_tokens=number,
    )


class Load:
    """Records at a steady pace; `acknowledged` holds every record whose record() returned."""

    def __init__(self, writer: UsageWriter) -> None:
        self.writer = writer
        self.acknowledged: list[UsageRecord] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task

    async def _run(self) -> None:
        number = 0
        while not self._stop.is_set():
            record = make_record(number)
            await self.writer.record(record)
            self.acknowledged.append(record)
            number += 1
            await asyncio.sleep(0.002)


@pytest.mark.parametrize("durability", ["async", "sync"])
async def test_storage_outage_loses_and_duplicates_nothing(
    own_azurite: OwnAzurite, tmp_path: Path, table_prefix: str, durability: str
) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        storage_connection_string=azurite.connection_string("127.0.0.1", own_azurite.port),
        table_prefix=table_prefix,
        usage_journal_dir=str(tmp_path / "journal"),
        usage_durability=durability,
        usage_flush_interval_ms=20,
    )
    tables = Tables(settings)
    await create_usage_tables(tables, settings)
    writer = UsageWriter(tables=tables, settings=settings, replay_interval_seconds=0.2, timeout_seconds=1)
    load = Load(writer)
    try:
        load.start()
        await asyncio.sleep(0.5)
        await asyncio.to_thread(own_azurite.stop)
        before_outage = len(load.acknowledged)
        await _wait_until(lambda: writer.stats.spilled > 50, seconds=10)
        await asyncio.to_thread(own_azurite.start)
        during_outage = len(load.acknowledged)
        await _wait_until(lambda: writer.stats.replayed >= writer.stats.spilled, seconds=15)
        await asyncio.sleep(0.3)
        await load.stop()
        await writer.close()
        assert 0 < before_outage < during_outage < len(load.acknowledged)

        stored = [row async for row in tables.table("usage").query_entities(RAW_ROWS, select=["RowKey"])]
        assert len(stored) == len(load.acknowledged)
        assert {row["RowKey"] for row in stored} == {row_key(record) for record in load.acknowledged}
        assert writer.stats.spilled > 50
        assert not writer.journal_path.exists()
        assert await assert_consistent(tables) == len(load.acknowledged)  # the replay landed the aggregates too
    finally:
        await tables.close()


async def _wait_until(condition: Any, *, seconds: float) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")
