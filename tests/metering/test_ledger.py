"""The ledger in real Azurite: atomic openings and rolls, concurrency, outcome records."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from decimal import Decimal

import pytest

from core.hours import HOUR
from core.settings import Settings
from core.tables import Tables
from metering.ledger import Entry, Ledger, LedgerConflict, Status
from tests.metering.submit_support import DIMENSION, PAYG, ledger_rows, prepare_tables, utc

HOUR_10 = utc(2026, 3, 1, 10)
NOW = utc(2026, 3, 1, 11, 5)


@pytest.fixture
async def ledger(tables: Tables, make_settings: Callable[..., Settings]) -> Ledger:
    await prepare_tables(tables, make_settings())
    return Ledger(tables)


def entry(resource_id: str, hour: object = HOUR_10, tokens: int = 1_345) -> Entry:
    return Entry(
        resource_id=resource_id,
        dimension=DIMENSION,
        hour=hour,
        plan_id=PAYG,  # type: ignore[arg-type]
        tokens=tokens,
        quantity=Decimal(tokens) / 1000,
        created_at=NOW,
        updated_at=NOW,
    )


async def test_open_event_writes_event_meter_months_and_carry_together(ledger: Ledger, tables: Tables) -> None:
    resource = str(uuid.uuid4()).upper()  # resource IDs are matched without regard to case
    account = await ledger.load(resource, DIMENSION, HOUR_10)
    await ledger.open_event(
        account, entry(resource), assigned={"202603|dep|payg": 11_345}, carry_tokens=0, carry_after=None
    )

    again = await ledger.load(resource.lower(), DIMENSION, HOUR_10)
    assert again.assigned == {"202603|dep|payg": 11_345}
    assert again.carry_tokens == 0 and again.etag is not None
    stored = again.entries[HOUR_10]
    assert (stored.status, stored.tokens, stored.quantity, stored.attempts) == (
        Status.PENDING,
        1_345,
        Decimal("1.345"),
        0,
    )
    assert len(await ledger_rows(tables)) == 3


async def test_a_stale_account_cannot_open_or_roll(ledger: Ledger, tables: Tables) -> None:
    resource = str(uuid.uuid4())
    first = await ledger.load(resource, DIMENSION, HOUR_10)
    second = await ledger.load(resource, DIMENSION, HOUR_10)
    await ledger.open_event(first, entry(resource), assigned={"m": 1}, carry_tokens=0, carry_after=None)
    with pytest.raises(LedgerConflict):
        await ledger.open_event(
            second, entry(resource, HOUR_10 + HOUR), assigned={"m": 2}, carry_tokens=0, carry_after=None
        )
    rows = await ledger_rows(tables)
    assert sorted(r["RowKey"] for r in rows) == ["h|2026030110", "m|m", "state"]  # nothing of the loser

    fresh = await ledger.load(resource, DIMENSION, HOUR_10)
    with pytest.raises(LedgerConflict):  # the same hour twice: refused even with a current etag
        await ledger.open_event(fresh, entry(resource), assigned={"m": 5}, carry_tokens=0, carry_after=None)


async def test_roll_moves_the_tokens_into_the_carry(ledger: Ledger) -> None:
    resource = str(uuid.uuid4())
    account = await ledger.load(resource, DIMENSION, HOUR_10)
    account = await ledger.open_event(account, entry(resource), assigned={}, carry_tokens=5, carry_after=None)
    account = await ledger.roll(account, account.entries[HOUR_10], now=NOW, reason="Expired")

    stored = await ledger.load(resource, DIMENSION, HOUR_10)
    assert stored.carry_tokens == 1_345 + 5
    assert stored.entries[HOUR_10].status is Status.EXPIRED_ROLLED
    assert stored.entries[HOUR_10].last_error == "Expired"


async def test_record_refuses_a_stale_event(ledger: Ledger) -> None:
    resource = str(uuid.uuid4())
    account = await ledger.load(resource, DIMENSION, HOUR_10)
    account = await ledger.open_event(account, entry(resource), assigned={}, carry_tokens=0, carry_after=None)
    opened = account.entries[HOUR_10]
    done = await ledger.record(opened, status=Status.ACCEPTED, usage_event_id="e1", attempts=1)
    assert done is not None and done.status is Status.ACCEPTED
    assert await ledger.record(opened, status=Status.RETRY, attempts=1) is None  # would undo "accepted"
    assert (await ledger.load(resource, DIMENSION, HOUR_10)).entries[HOUR_10].status is Status.ACCEPTED


async def test_load_finds_old_open_events_but_not_old_finished_ones(ledger: Ledger) -> None:
    resource = str(uuid.uuid4())
    old, older = HOUR_10 - 72 * HOUR, HOUR_10 - 96 * HOUR
    account = await ledger.load(resource, DIMENSION, older)
    account = await ledger.open_event(account, entry(resource, older), assigned={}, carry_tokens=0, carry_after=None)
    account = await ledger.open_event(account, entry(resource, old), assigned={}, carry_tokens=0, carry_after=None)
    await ledger.record(account.entries[older], status=Status.ACCEPTED)
    retrying = dataclasses.replace(account.entries[old])
    await ledger.record(retrying, status=Status.RETRY, attempts=1)

    since_now = await ledger.load(resource, DIMENSION, HOUR_10)
    assert list(since_now.entries) == [old]
    assert since_now.entries[old].status is Status.RETRY
