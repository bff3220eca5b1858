"""The hourly timer runs the usage roll-up, then metering; a failure of one does not stop the other."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from core.errors import StorageUnavailable
from core.hours import HOUR, floor_hour
from core.settings import Settings
from core.tables import Tables
from metering import timer
from metering.usage_hours import RESERVED
from tests.metering.test_usage_rollup import record, write


class Timer:
    past_due = False


@pytest.fixture
def calls(make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The order the jobs ran in; metering is a stand-in that records its call."""
    ran: list[str] = []
    settings = make_settings()
    monkeypatch.setattr(timer, "get_settings", lambda: settings)
    original = timer.run_usage_rollup

    async def rollup(settings: Settings) -> object:
        ran.append("usage roll-up")
        return await original(settings)

    async def metering(settings: Settings) -> None:
        ran.append("metering")

    monkeypatch.setattr(timer, "run_usage_rollup", rollup)
    monkeypatch.setattr(timer, "run_metering", metering)
    return ran


async def rolled_rows(tables: Tables) -> int:
    return len([e async for e in tables.table("usagehours").list_entities() if e["PartitionKey"] != RESERVED])


async def test_the_timer_rolls_usage_up_then_meters(tables: Tables, calls: list[str]) -> None:
    await write(tables, [record(1, floor_hour(datetime.now(UTC)) - HOUR, random.Random(1))])
    await timer.submit_metering(Timer())  # type: ignore[arg-type]
    assert calls == ["usage roll-up", "metering"]
    assert await rolled_rows(tables) == 1


async def test_a_failed_rollup_does_not_stop_metering(
    calls: list[str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def unavailable(settings: Settings) -> None:
        calls.append("usage roll-up")
        raise StorageUnavailable("Storage is unavailable (ServiceRequestError).")

    monkeypatch.setattr(timer, "run_usage_rollup", unavailable)
    with caplog.at_level(logging.INFO, logger="metering.timer"), pytest.raises(StorageUnavailable):
        await timer.submit_metering(Timer())  # type: ignore[arg-type]
    assert calls == ["usage roll-up", "metering"]
    [failure] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert failure.getMessage().startswith("usage roll-up failed: Storage is unavailable") and not failure.exc_info


async def test_a_failed_metering_run_does_not_undo_the_rollup(
    tables: Tables, calls: list[str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(settings: Settings) -> None:
        calls.append("metering")
        raise KeyError("plans")

    await write(tables, [record(1, floor_hour(datetime.now(UTC)) - HOUR, random.Random(1))])
    monkeypatch.setattr(timer, "run_metering", broken)
    with caplog.at_level(logging.INFO, logger="metering.timer"), pytest.raises(KeyError):
        await timer.submit_metering(Timer())  # type: ignore[arg-type]
    assert calls == ["usage roll-up", "metering"]
    assert await rolled_rows(tables) == 1
    [failure] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert failure.getMessage() == "metering failed (KeyError)" and failure.exc_info
