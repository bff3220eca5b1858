"""`python -m metering verify` and `python -m metering backfill`, built from the environment like `submit`."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from azure.data.tables import UpdateMode

from core.tables import Tables, int64
from localdev import azurite
from metering.__main__ import main
from tests.usage.test_backfill import write_legacy
from tests.usage.test_verify import HOUR, SHARDS, H, records_in
from usage.direct import write_records
from usage.groups import group_key, group_of
from usage.store import AGGREGATE_PREFIX, partition_key

SINCE, UNTIL = f"{HOUR:%Y-%m-%dT%H}", f"{HOUR + 2 * H:%Y-%m-%dT%H}"


@pytest.fixture
def environment(azurite_connection_string: str, table_prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIUTONG_STORAGE_CONNECTION_STRING", azurite_connection_string)
    monkeypatch.setenv("LIUTONG_TABLE_PREFIX", table_prefix)


async def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, Any]]]:
    code = await asyncio.to_thread(main, list(argv))
    return code, [json.loads(line) for line in capsys.readouterr().out.splitlines()]


async def test_verify_finds_legacy_hours_backfill_fixes_them(
    environment: None, tables: Tables, capsys: pytest.CaptureFixture[str]
) -> None:
    await write_legacy(tables, records_in(HOUR + H, 9))
    await write_records(tables, records_in(HOUR, 5, start=100), shard=SHARDS[0])

    code, lines = await run(capsys, "verify", "--since", SINCE, "--until", UNTIL)
    assert code == 1
    *differences, summary = lines
    assert [(d["hour"], d["source"], d["raw"], d["stored"], d["problem"]) for d in differences] == [
        ((HOUR + H).isoformat(), "header", 9, None, "not aggregated: run backfill"),
        ((HOUR + H).isoformat(), "copy", 9, None, "not aggregated: run backfill"),
    ]
    assert (summary["hours"], summary["partitions"], summary["records"], summary["ok"]) == (2, 2, 14, False)

    code, [backfilled] = await run(capsys, "backfill", "--since", SINCE, "--until", UNTIL)
    assert code == 0
    assert (backfilled["partitions"], backfilled["backfilled"], backfilled["records"]) == (2, 1, 9)
    code, [summary] = await run(capsys, "verify", "--since", SINCE, "--until", UNTIL)
    assert (code, summary["differences"], summary["ok"]) == (0, 0, True)
    code, [again] = await run(capsys, "backfill", "--since", SINCE, "--until", UNTIL)
    assert (code, again["backfilled"], again["skipped"]) == (0, 0, 2)


async def test_verify_prints_a_corrupted_counter(
    environment: None, tables: Tables, capsys: pytest.CaptureFixture[str]
) -> None:
    written = records_in(HOUR, 4)
    await write_records(tables, written, shard=SHARDS[0])
    group = group_of(written[0])
    row = {"PartitionKey": partition_key(HOUR, SHARDS[0]), "RowKey": AGGREGATE_PREFIX + group_key(group),
           "total_tokens": int64(123_456)}
    await tables.table("usage").upsert_entity(row, mode=UpdateMode.MERGE)

    code, [difference, summary] = await run(capsys, "verify", "--since", SINCE)  # one hour by default
    assert code == 1 and summary["hours"] == 1 and summary["differences"] == 1
    true = sum(r.total_tokens for r in written if group_of(r) == group)
    assert {k: difference[k] for k in ("shard", "source", "counter", "raw", "stored", "problem")} == {
        "shard": SHARDS[0], "source": "partition", "counter": "total_tokens", "raw": true, "stored": 123_456,
        "problem": "differs",
    }
    assert difference["group"]["team"] == written[0].team


@pytest.mark.parametrize("command", ["verify", "backfill"])
async def test_exit_codes(
    environment: None, tables: Tables, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:
    for argv in ([command], [command, "--since", "yesterday"], [command, "--since", SINCE, "--until", "2031-03-04"]):
        with pytest.raises(SystemExit) as bad:
            main(argv)
        assert bad.value.code == 2
    assert main([command, "--since", SINCE, "--until", SINCE]) == 2
    assert main([command, "--since", UNTIL, "--until", SINCE]) == 2
    closed = azurite.connection_string("127.0.0.1", azurite.free_port())
    monkeypatch.setenv("LIUTONG_STORAGE_CONNECTION_STRING", closed)
    assert await asyncio.to_thread(main, [command, "--since", SINCE]) == 4
    assert "Storage is unavailable" in capsys.readouterr().err
