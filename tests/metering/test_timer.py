"""The hourly timer runs metering, then usage retention; a failure of one does not stop the other, and the
invocation then fails with the first error."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from core.errors import StorageUnavailable
from core.hours import HOUR, floor_hour
from core.settings import Settings
from core.tables import Tables
from metering import timer
from metering.rollup import HourlyTotals
from tests.usage.test_purge import records_at
from usage.direct import write_records

RAW_DAYS = 2


class Timer:
    past_due = False


@pytest.fixture
def calls(make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The order the jobs ran in: metering is a stand-in that records its call, retention runs for real."""
    ran: list[str] = []
    settings = make_settings(usage_raw_retention_days=RAW_DAYS)
    monkeypatch.setattr(timer, "get_settings", lambda: settings)
    original = timer.run_usage_retention

    async def retention(settings: Settings) -> object:
        ran.append("usage retention")
        return await original(settings)

    async def metering(settings: Settings) -> None:
        ran.append("metering")

    monkeypatch.setattr(timer, "run_usage_retention", retention)
    monkeypatch.setattr(timer, "run_metering", metering)
    return ran


async def expired_usage(tables: Tables, *, metered: bool = True) -> None:
    """Usage of an hour past the raw retention; `metered`: metering has rolled up to the last hour."""
    last_hour = floor_hour(datetime.now(UTC)) - HOUR
    await write_records(tables, records_at(last_hour - RAW_DAYS * 24 * HOUR, 5, seed=1), shard="a1b2c3")
    if metered:
        await HourlyTotals(tables).advance_watermark(last_hour)


async def usage_rows(tables: Tables) -> int:
    return len([row async for row in tables.table("usage").list_entities()])


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno == logging.ERROR]


async def test_the_timer_meters_then_deletes_expired_usage(tables: Tables, calls: list[str]) -> None:
    await expired_usage(tables)
    await timer.submit_metering(Timer())  # type: ignore[arg-type]
    assert calls == ["metering", "usage retention"]
    assert await usage_rows(tables) == 0


async def test_no_raw_usage_is_deleted_before_metering_has_run(
    tables: Tables, calls: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    await expired_usage(tables, metered=False)
    rows = await usage_rows(tables)
    with caplog.at_level(logging.INFO, logger="metering"):
        await timer.submit_metering(Timer())  # type: ignore[arg-type]
    assert await usage_rows(tables) == rows > 0
    assert any("metering has not run yet" in record.getMessage() for record in caplog.records)


async def test_a_failed_metering_run_does_not_stop_retention(
    tables: Tables, calls: list[str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(settings: Settings) -> None:
        calls.append("metering")
        raise KeyError("plans")

    await expired_usage(tables)
    monkeypatch.setattr(timer, "run_metering", broken)
    with caplog.at_level(logging.INFO, logger="metering.timer"), pytest.raises(KeyError):
        await timer.submit_metering(Timer())  # type: ignore[arg-type]
    assert calls == ["metering", "usage retention"]
    assert await usage_rows(tables) == 0
    [failure] = errors(caplog)
    assert failure.getMessage() == "metering failed (KeyError)" and failure.exc_info


async def test_a_failed_retention_run_fails_the_invocation_after_metering(
    calls: list[str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def unavailable(settings: Settings) -> None:
        calls.append("usage retention")
        raise StorageUnavailable("Storage is unavailable (ServiceRequestError).")

    monkeypatch.setattr(timer, "run_usage_retention", unavailable)
    with caplog.at_level(logging.INFO, logger="metering.timer"), pytest.raises(StorageUnavailable):
        await timer.submit_metering(Timer())  # type: ignore[arg-type]
    assert calls == ["metering", "usage retention"]
    [failure] = errors(caplog)
    assert failure.getMessage().startswith("usage retention failed: Storage is unavailable") and not failure.exc_info


async def test_when_both_fail_the_invocation_fails_with_the_first_error(
    calls: list[str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(settings: Settings) -> None:
        calls.append("metering")
        raise KeyError("plans")

    async def unavailable(settings: Settings) -> None:
        calls.append("usage retention")
        raise StorageUnavailable("Storage is unavailable (ServiceRequestError).")

    monkeypatch.setattr(timer, "run_metering", broken)
    monkeypatch.setattr(timer, "run_usage_retention", unavailable)
    with caplog.at_level(logging.INFO, logger="metering.timer"), pytest.raises(KeyError):
        await timer.submit_metering(Timer())  # type: ignore[arg-type]
    assert calls == ["metering", "usage retention"]
    assert [record.getMessage().split(" failed")[0] for record in errors(caplog)] == ["metering", "usage retention"]
