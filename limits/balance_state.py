"""The state of one prepaid balance row, the operations on it (pure: they run in limits.balance's compare-and-swap
loop, again after every conflict) and its mapping to and from the table entity (layout in limits.balance)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from core.errors import LiutongError, ServiceUnavailable
from limits.lots import LEGACY_LOT, Lot, Lots, TopUp, dump_lots, load_lots
from limits.owners import int64, read_int

ROW = "balance"
# A doubtful write is checked against this many later writes of the owner; retry_deferred runs every few seconds.
RECENT_BATCHES = 128


@dataclass
class BalanceState:
    available: int = 0
    reserved: int = 0
    shortfall: int = 0
    batches: tuple[str, ...] = ()
    lots: Lots = field(default_factory=Lots)
    ledger: int = 0


class Hold(int):
    """Plan tokens held by one reservation (an int, as before) and the lots they came from."""

    lots: tuple[tuple[str, int], ...]
    model: str | None
    remaining: int  # the available balance just after the reservation

    def __new__(cls, tokens: int, lots: tuple[tuple[str, int], ...] = (), *, model: str | None = None,
                remaining: int = 0) -> Hold:
        hold = super().__new__(cls, tokens)
        hold.lots, hold.model, hold.remaining = lots, model, remaining
        return hold


@dataclass(frozen=True)
class TopUpResult:
    lot: Lot
    duplicate: bool  # the same Idempotency-Key credited it before: nothing was added now
    available: int


Apply = Callable[[BalanceState, datetime], object]
Undo = Callable[[object], Apply]
Result = object

def reserve_op(tokens: int, model: str | None) -> Apply:
    def apply(state: BalanceState, now: datetime) -> Hold:
        parts = state.lots.hold(tokens, model, now)
        state.reserved += tokens
        return Hold(tokens, parts, model=model, remaining=state.lots.available(now))

    return apply


def release_op(hold: Hold, actual: int) -> Apply:
    def apply(state: BalanceState, now: datetime) -> int:
        state.reserved -= int(hold)
        uncovered = state.lots.release(hold.lots, actual, hold.model, now)
        state.shortfall += uncovered
        return uncovered

    return apply


def undo_reserve(result: object) -> Apply:
    return release_op(cast(Hold, result), 0)


def top_up_op(top_up: TopUp) -> Apply:
    def apply(state: BalanceState, now: datetime) -> tuple[Lot, bool]:
        return state.lots.top_up(top_up, now)

    return apply



def trial(
    state: BalanceState, ops: Sequence[Apply], batch_id: str, now: datetime
) -> tuple[BalanceState | None, list[Result]]:
    """The ops applied to `state`: the state to write (None when nothing changed) and each op's result."""
    trial = BalanceState(
        state.available, state.reserved, state.shortfall, state.batches, state.lots.copy(), state.ledger
    )
    results = [run_op(apply, trial, now) for apply in ops]
    trial.lots.fold(now)
    trial.available = trial.lots.available(now)
    trial.ledger += len(trial.lots.events)
    if trial == state:
        return None, results
    trial.batches = (*state.batches, batch_id)[-RECENT_BATCHES:]
    return trial, results


def run_op(apply: Apply, state: BalanceState, now: datetime) -> Result:
    try:
        return apply(state, now)
    except LiutongError as refused:  # InsufficientQuota, or an operator's change that does not fit
        if isinstance(refused, ServiceUnavailable):
            raise
        return refused


def sweep_op(state: BalanceState, now: datetime) -> int:
    return state.lots.available(now)



def has_expired(state: BalanceState, now: datetime) -> bool:
    return any(lot.left and lot.expired(now) for lot in state.lots.lots)


def state_of(entity: Mapping[str, Any]) -> BalanceState:
    available, reserved, shortfall = (read_int(entity, name) for name in ("available", "reserved", "shortfall"))
    if "lots" in entity:
        lots = load_lots(str(entity["lots"]))
    else:
        lots = [Lot(LEGACY_LOT, available, amount=available)] if available > 0 else []
    recent = tuple(str(entity.get("topups", "")).split())
    batches = tuple(str(entity.get("batches", "")).split())
    return BalanceState(available, reserved, shortfall, batches, Lots(lots, recent), read_int(entity, "ledger"))


def entity_of(key: str, state: BalanceState) -> dict[str, Any]:
    return {
        "PartitionKey": key,
        "RowKey": ROW,
        "available": int64(state.available),
        "reserved": int64(state.reserved),
        "shortfall": int64(state.shortfall),
        "lots": dump_lots(state.lots.lots),
        "topups": " ".join(state.lots.recent),
        "ledger": int64(state.ledger),
        "batches": " ".join(state.batches),
    }
