"""`liutong-admin usage-verify` against the whole local service, signed in as the operator: usage written into the
stack's tables, verified clean, then one aggregate row corrupted and reported (exit 1)."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import UpdateMode

from core.hours import HOUR, floor_hour
from core.tables import Tables, int64
from localdev.stack import LocalStack
from tests.admin.cli.conftest import Cli, Result
from tests.usage.test_verify import records_in
from usage.direct import write_records
from usage.groups import group_key, group_of
from usage.store import AGGREGATE_PREFIX, partition_key

pytestmark = pytest.mark.e2e


async def verify(operator: Cli, *argv: str) -> Result:
    return await asyncio.to_thread(operator, "usage-verify", *argv)


async def test_usage_verify_reports_differences_and_exits_1(operator: Cli, stack: LocalStack) -> None:
    hour = floor_hour(datetime.now(UTC)) - timedelta(days=3)  # completed, within the raw retention
    shard = secrets.token_hex(3)
    written = records_in(hour, 6)
    tables = Tables(stack.settings())
    try:
        await write_records(tables, written, shard=shard)
        window = ("--from", hour.isoformat(), "--to", (hour + HOUR).isoformat())
        clean = await verify(operator, *window)
        assert (clean.code, clean.out) == (0, "no differences\n"), clean.err
        assert "6 raw records in 1 partitions recounted" in clean.err

        group = group_of(written[0])
        row = {"PartitionKey": partition_key(hour, shard), "RowKey": AGGREGATE_PREFIX + group_key(group),
               "errors": int64(77)}
        await tables.table("usage").upsert_entity(row, mode=UpdateMode.MERGE)
        differs = await verify(operator, "--from", (hour + timedelta(minutes=20)).isoformat())  # its whole hour
        assert differs.code == 1, differs.err
        [line] = [text for text in differs.out.splitlines() if shard in text]
        assert "partition" in line and "errors" in line and "77" in line and "differs" in line
        as_json = await verify(operator, *window, "--json")
        assert as_json.code == 1 and as_json.json()["ok"] is False
        [difference] = as_json.json()["data"]
        assert (difference["shard"], difference["counter"], difference["stored"]) == (shard, "errors", 77)
    finally:
        await tables.close()


async def test_usage_verify_refusals(operator: Cli) -> None:
    too_long = await verify(operator, "--from", "2026-11-20T00:00:00Z", "--to", "2026-11-22T00:00:00Z")
    assert too_long.code == 1 and "more than" in too_long.err
    assert (await verify(operator, "--from", "last tuesday")).code == 1
    assert (await verify(operator)).code == 2  # --from is required
