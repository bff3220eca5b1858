"""Prepaid lots on a real balance row: consumption order, packs, expiry with a test clock, the ledger, idempotency."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.errors import Conflict, InsufficientQuota, InvalidRequest
from core.settings import Settings
from core.tables import Tables
from keystore.principal import Principal
from limits.balance import PrepaidBalances
from limits.ledger import read_ledger
from limits.limiter import BALANCE_HEADER, BALANCE_TABLE, PlanLimiter
from limits.lots import MAX_OPEN_LOTS, TopUp
from limits.plans import Plan

OWNER = "team-t"
T0 = datetime(2031, 5, 1, 12, tzinfo=UTC)
PLAN = Plan(plan_id="prepaid", models=("m", "p"), mode="prepaid", rpm=1000, tpm=10**6)


class Clock:
    def __init__(self) -> None:
        self.at = T0

    def __call__(self) -> datetime:
        return self.at


def caller() -> Principal:
    return Principal(key_id="k", key_prefix="lt-x", key_hash="h", team="t", plan_id="prepaid", deployment_id=None)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def balances(tables: Tables, settings: Settings, clock: Clock) -> PrepaidBalances:
    return PrepaidBalances(tables.table(BALANCE_TABLE), now=clock)


def days(n: float) -> datetime:
    return T0 + timedelta(days=n)


async def ledger(balances: PrepaidBalances) -> list[tuple[str, int, str]]:
    return [(e.event.kind, e.event.tokens, e.event.lot) async for e in read_ledger(balances._table, OWNER)]


async def test_calls_draw_the_earliest_expiring_lot_first_and_packs_serve_only_their_model(
    tables: Tables, settings: Settings, clock: Clock
) -> None:
    limiter = PlanLimiter(tables, settings, now=clock, background=False)
    balances = limiter.balances
    await balances.top_up(OWNER, TopUp(100, days(30), lot_id="late"))
    await balances.top_up(OWNER, TopUp(50, days(10), lot_id="early"))
    await balances.top_up(OWNER, TopUp(40, days(60), model="p", lot_id="pack"))
    admission = await limiter.admit(caller(), PLAN, model_alias="m", estimated_plan_tokens=70)
    assert admission.headers[BALANCE_HEADER] == "120"
    assert admission._hold.lots == (("early", 50), ("late", 20))
    await admission.settle(plan_tokens=60)  # 50 from "early", 10 from "late"; 10 go back to "late"
    state = await balances.get(OWNER)
    assert {lot.id: lot.left for lot in state.lots.lots} == {"late": 90, "pack": 40}
    assert (state.available, state.reserved) == (130, 0)
    pack = await limiter.admit(caller(), PLAN, model_alias="p", estimated_plan_tokens=45)
    assert pack._hold.lots == (("pack", 40), ("late", 5))
    await pack.refund()
    with pytest.raises(InsufficientQuota, match="too low"):
        await limiter.admit(caller(), PLAN, model_alias="m", estimated_plan_tokens=91)  # the pack is not m's


async def test_expiry_folds_what_is_left_and_the_ledger_shows_it(balances: PrepaidBalances, clock: Clock) -> None:
    await balances.top_up(OWNER, TopUp(100, days(1), lot_id="a", reference="INV-1"))
    await balances.top_up(OWNER, TopUp(30, days(5), lot_id="b"))
    hold = await balances.reserve(OWNER, 20)
    clock.at = days(2)
    assert (await balances.get(OWNER)).available == 30  # already left out before the fold is written
    await balances.settle(OWNER, hold, 5)  # 15 go back to "a", which has expired: they expire too
    assert await ledger(balances) == [("top_up", 100, "a"), ("top_up", 30, "b"), ("expiry", -95, "a")]
    state = await balances.get(OWNER)
    assert [lot.id for lot in state.lots.lots] == ["b"] and state.available == 30
    clock.at = days(6)
    await balances.retry_deferred()  # the periodic sweep
    await balances.close()
    assert (await ledger(balances))[-1] == ("expiry", -30, "b")
    assert (await balances.get(OWNER)).available == 0


async def test_the_refusal_says_whether_the_balance_or_the_pack_ran_out(balances: PrepaidBalances) -> None:
    with pytest.raises(InsufficientQuota, match="balance is empty"):
        await balances.reserve(OWNER, 1, model="m")
    await balances.top_up(OWNER, TopUp(10, None, model="p"))
    with pytest.raises(InsufficientQuota, match="pack for model 'p'"):
        await balances.reserve(OWNER, 11, model="p")
    with pytest.raises(InsufficientQuota, match="packs for other models do not count"):
        await balances.reserve(OWNER, 1, model="m")


async def test_a_retried_top_up_credits_once(balances: PrepaidBalances) -> None:
    first = await balances.top_up(OWNER, TopUp(100, days(30), lot_id="key1"))
    again = await balances.top_up(OWNER, TopUp(100, days(30), lot_id="key1"))
    assert (first.duplicate, again.duplicate, again.available) == (False, True, 100)
    assert await ledger(balances) == [("top_up", 100, "key1")]


async def test_adjustments_never_go_below_zero_and_conversions_move_packs(balances: PrepaidBalances) -> None:
    await balances.top_up(OWNER, TopUp(10, days(30), model="p", lot_id="pack"))
    await balances.top_up(OWNER, TopUp(5, days(3)))
    with pytest.raises(InvalidRequest) as refused:
        await balances.deduct(OWNER, 16, reason="r", actor="op")
    assert refused.value.param == "tokens"
    assert await balances.deduct(OWNER, 7, reason="refund to card", actor="op") == 8  # general first, then the pack
    assert await balances.convert(OWNER, "p", None, reason="p retired", actor="op") == 8
    await balances.reserve(OWNER, 8, model="m")  # the former pack is general credit now
    kinds = [kind for kind, _, _ in await ledger(balances)]
    assert kinds == ["top_up", "top_up", "adjustment", "conversion"]


async def test_an_owner_has_at_most_so_many_open_lots(balances: PrepaidBalances) -> None:
    for n in range(MAX_OPEN_LOTS):
        await balances.top_up(OWNER, TopUp(1, None, lot_id=f"l{n}"))
    with pytest.raises(Conflict):
        await balances.top_up(OWNER, TopUp(1, None))


async def test_a_row_from_before_lots_is_one_lot_without_expiry(tables: Tables, balances: PrepaidBalances) -> None:
    await tables.table(BALANCE_TABLE).create_entity(
        {"PartitionKey": OWNER, "RowKey": "balance", "available": 70, "reserved": 0, "shortfall": 0, "batches": ""}
    )
    hold = await balances.reserve(OWNER, 50, model="m")
    await balances.settle(OWNER, hold, 20)
    state = await balances.get(OWNER)
    assert state.available == 50 and [(lot.id, lot.expires_at) for lot in state.lots.lots] == [("legacy", None)]
