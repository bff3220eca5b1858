"""`python -m metering submit` and the timer handler, built from settings like the service."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.hours import HOUR, floor_hour
from core.settings import Settings
from core.tables import Tables
from localdev.standin import RunningStandin, start_in_thread
from localdev.standin.metering import MeteringStandin, metering_of
from metering.__main__ import main
from metering.timer import submit_metering
from tests.metering.submit_support import (
    CATALOG,
    DIMENSION,
    Customer,
    add_customer,
    prepare_tables,
    write_usage,
)
from tests.usage.support import create_usage_tables


@pytest.fixture
def standin() -> Iterator[RunningStandin]:
    with start_in_thread() as running:
        yield running


@pytest.fixture
def metering(standin: RunningStandin) -> MeteringStandin:
    return metering_of(standin.state)


@pytest.fixture
def environment(
    standin: RunningStandin,
    azurite_connection_string: str,
    table_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    plans = tmp_path / "plans.json"
    plans.write_text(CATALOG.model_dump_json())
    values = {
        "LIUTONG_STORAGE_CONNECTION_STRING": azurite_connection_string,
        "LIUTONG_TABLE_PREFIX": table_prefix,
        "LIUTONG_PLANS_FILE": str(plans),
        "LIUTONG_METERING_ENDPOINT": standin.base_url,
        **standin.environ(),  # the service's managed identity, as App Service provides it
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
async def customer(tables: Tables, make_settings: Callable[..., Settings], metering: MeteringStandin) -> Customer:
    await create_usage_tables(tables, make_settings())
    customer = await add_customer(tables)
    metering.register_resource(customer.resource_id, customer.plan_id, [DIMENSION])
    last_hour = floor_hour(datetime.now(UTC)) - HOUR
    await write_usage(tables, last_hour, customer.deployment_id, 12_000)
    return customer


async def metering_rows(tables: Tables) -> int:
    names = await table_names(tables)
    count = 0
    for logical in ("meterhours", "meterledger"):
        if logical in names:
            count += len([e async for e in tables.table(logical).list_entities()])
    return count


async def test_dry_run_prints_the_events_then_a_real_run_sends_them(
    environment: dict[str, str],
    customer: Customer,
    metering: MeteringStandin,
    tables: Tables,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert await asyncio.to_thread(main, ["submit", "--dry-run"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["resourceId"], e["quantity"], e["dimension"], e["planId"]) for e in printed] == [
        (customer.resource_id, 2.0, DIMENSION, customer.plan_id)
    ]
    assert metering.calls == []
    assert await metering_rows(tables) == 0  # a dry run writes nothing

    assert await asyncio.to_thread(main, ["submit"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["events"], summary["accepted"]) == (1, 1)
    assert metering.total_quantity(customer.resource_id, DIMENSION) == 2


async def table_names(tables: Tables) -> set[str]:
    names = {t.name async for t in tables.service.list_tables()}
    prefix = tables.table("usage").table_name.removesuffix("usage")
    return {n.removeprefix(prefix) for n in names} & {"usage", "meterhours", "meterledger"}


async def test_exit_codes(environment: dict[str, str], customer: Customer, metering: MeteringStandin) -> None:
    with pytest.raises(SystemExit) as bad:
        main(["submit", "--hour", "yesterday"])
    assert bad.value.code == 2
    current = f"{datetime.now(UTC):%Y-%m-%dT%H}"
    assert await asyncio.to_thread(main, ["submit", "--hour", current]) == 2  # not ended yet
    metering.fail_next(1, status=503)
    assert await asyncio.to_thread(main, ["submit"]) == 3  # retried on the next run


async def test_exit_code_for_refused_events(
    environment: dict[str, str], tables: Tables, make_settings: Callable[..., Settings]
) -> None:
    await prepare_tables(tables, make_settings())
    unknown = await add_customer(tables)  # never registered with the Metering Service
    await write_usage(tables, floor_hour(datetime.now(UTC)) - HOUR, unknown.deployment_id, 10_001)
    assert await asyncio.to_thread(main, ["submit"]) == 1


class PastDueTimer:
    past_due = True


async def test_timer_handler(
    environment: dict[str, str],
    customer: Customer,
    metering: MeteringStandin,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr("metering.timer.get_settings", lambda: Settings())
    with caplog.at_level(logging.INFO, logger="metering.timer"):
        await submit_metering(PastDueTimer())  # type: ignore[arg-type]
    assert metering.total_quantity(customer.resource_id, DIMENSION) == 2
    assert any("past due" in r.getMessage() for r in caplog.records)
