"""`python -m metering purge-usage [--dry-run]`, built from the environment like the service."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from core.tables import Tables
from metering.__main__ import main
from tests.metering.test_timer import RAW_DAYS, expired_usage, usage_rows


@pytest.fixture
def environment(azurite_connection_string: str, table_prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIUTONG_STORAGE_CONNECTION_STRING", azurite_connection_string)
    monkeypatch.setenv("LIUTONG_TABLE_PREFIX", table_prefix)
    monkeypatch.setenv("LIUTONG_USAGE_RAW_RETENTION_DAYS", str(RAW_DAYS))


async def test_a_dry_run_reports_what_a_run_then_deletes(
    environment: None, tables: Tables, capsys: pytest.CaptureFixture[str]
) -> None:
    await expired_usage(tables)
    rows = await usage_rows(tables)

    assert await asyncio.to_thread(main, ["purge-usage", "--dry-run"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert (dry["dry_run"], dry["raw_rows_deleted"], dry["shard_hours_sealed"]) == (True, rows, 1)
    assert await usage_rows(tables) == rows

    assert await asyncio.to_thread(main, ["purge-usage"]) == 0
    assert json.loads(capsys.readouterr().out) == {**dry, "dry_run": False}
    assert await usage_rows(tables) == 0


async def test_a_dry_run_creates_no_tables(
    environment: None, tables: Tables, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = "t" + uuid.uuid4().hex[:12]
    monkeypatch.setenv("LIUTONG_TABLE_PREFIX", prefix)
    assert await asyncio.to_thread(main, ["purge-usage", "--dry-run"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["raw_before"], summary["raw_rows_deleted"]) == (None, 0)  # metering has never run there
    assert [t.name async for t in tables.service.list_tables() if t.name.startswith(prefix)] == []


def test_bad_settings_exit_2(environment: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIUTONG_USAGE_RAW_RETENTION_DAYS", "1")
    assert main(["purge-usage"]) == 2
