"""The arithmetic of prepaid lots, pure and in memory (limits.balance stores it and writes it).

A lot is one top-up: plan tokens `left` to draw on, `held` by calls in flight, an optional expiry, an optional model
(a pack: only calls to that model draw on it) and an optional reference such as an invoice number. A call to model m
draws on m's packs first, then on general lots, each group earliest expiry first (no expiry last). Expired lots are
folded away after every change: what is left of them leaves the balance with a ledger event. A lot stays while calls
hold tokens of it, so a settle gives back to the lot the tokens came from; lots whose holds were never settled
(an instance died) go STALE_HOLD after their expiry.

The balance is never negative: every draw is bounded by what the lots have left.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from core.errors import Conflict, InsufficientQuota, InvalidRequest

MAX_OPEN_LOTS = 100
MAX_FOLDS_PER_WRITE = 40  # expiries folded in one write; one ledger row each, in one transaction of at most 100
STALE_HOLD = timedelta(days=7)
RECENT_TOP_UPS = 64
LEGACY_LOT = "legacy"  # a balance row from before lots: its available tokens, without expiry
_NEVER = datetime.max.replace(tzinfo=UTC)


@dataclass
class Lot:
    id: str
    left: int
    expires_at: datetime | None = None
    model: str | None = None  # a pack for this model alias only; None: general credit
    reference: str | None = None
    amount: int = 0  # as bought
    bought_at: datetime | None = None
    held: int = 0

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def order(self) -> tuple[datetime, datetime, str]:
        return (self.expires_at or _NEVER, self.bought_at or _NEVER, self.id)


@dataclass(frozen=True)
class LedgerEvent:
    """A change of the balance that is not a call: written to the ledger with the balance row, atomically."""

    kind: str  # top_up | expiry | conversion | adjustment
    tokens: int  # the change of the available balance (a conversion moves tokens: 0 change, `moved` says how many)
    lot: str
    model: str | None = None
    to_model: str | None = None
    moved: int = 0
    expires_at: datetime | None = None
    reference: str | None = None
    reason: str | None = None
    actor: str | None = None


@dataclass(frozen=True)
class TopUp:
    tokens: int
    expires_at: datetime | None
    model: str | None = None
    reference: str | None = None
    lot_id: str | None = None  # derived from the Idempotency-Key: a retry finds it in `recent` and credits nothing
    actor: str | None = None
    reason: str | None = None
    kind: str = "top_up"


@dataclass
class Lots:
    """The lots of one owner and what changed in them since they were read."""

    lots: list[Lot] = field(default_factory=list)
    recent: tuple[str, ...] = ()  # lot ids of the last top-ups, for idempotency
    events: list[LedgerEvent] = field(default_factory=list)

    def copy(self) -> Lots:
        return Lots([replace(lot) for lot in self.lots], self.recent, [])

    def available(self, now: datetime) -> int:
        return sum(lot.left for lot in self.lots if not lot.expired(now))

    def find(self, lot_id: str) -> Lot | None:
        return next((lot for lot in self.lots if lot.id == lot_id), None)

    def drawable(self, model: str | None, now: datetime) -> list[Lot]:
        """The lots a call to `model` may draw on, in the order it draws."""
        usable = [lot for lot in self.lots if lot.left > 0 and not lot.expired(now)]
        packs = sorted((lot for lot in usable if model is not None and lot.model == model), key=Lot.order)
        return [*packs, *sorted((lot for lot in usable if lot.model is None), key=Lot.order)]

    def hold(self, tokens: int, model: str | None, now: datetime) -> tuple[tuple[str, int], ...]:
        """Move `tokens` from left to held, or raise InsufficientQuota saying what ran out."""
        lots = self.drawable(model, now)
        if tokens > sum(lot.left for lot in lots):
            raise InsufficientQuota(self._refusal(tokens, model, lots, now), exhausted="balance")
        parts: list[tuple[str, int]] = []
        for lot in lots:
            take = min(lot.left, tokens - sum(n for _, n in parts))
            if take:
                lot.left -= take
                lot.held += take
                parts.append((lot.id, take))
        return tuple(parts)

    def release(self, parts: tuple[tuple[str, int], ...], actual: int, model: str | None, now: datetime) -> int:
        """Charge `actual` from the held lots in the order they were held, then from what the model may draw on;
        give the rest back to the lots it came from. Returns what no lot could cover."""
        due = actual
        for lot_id, held in parts:
            take = min(held, due)
            due -= take
            lot = self.find(lot_id)
            if lot is None:  # dropped as a stale hold: what comes back has expired
                if held > take:
                    self.events.append(LedgerEvent("expiry", 0, lot_id, moved=held - take,
                                                   reason="held by a call past the lot's expiry"))
                continue
            lot.held = max(0, lot.held - held)
            lot.left += held - take
        return self.charge(due, model, now)

    def charge(self, tokens: int, model: str | None, now: datetime) -> int:
        for lot in self.drawable(model, now):
            take = min(lot.left, tokens)
            lot.left -= take
            tokens -= take
        return tokens

    def top_up(self, top_up: TopUp, now: datetime) -> tuple[Lot, bool]:
        """The new lot, or the earlier one (True) when this top-up's id was seen already."""
        lot_id = top_up.lot_id
        if lot_id is not None and lot_id in self.recent:
            return self.find(lot_id) or Lot(lot_id, 0), True
        if len(self.lots) >= MAX_OPEN_LOTS:
            raise Conflict(f"The owner has {MAX_OPEN_LOTS} open lots; let some expire or adjust instead.",
                           code="too_many_lots")
        lot = Lot(lot_id or _new_id(), top_up.tokens, top_up.expires_at, top_up.model, top_up.reference,
                  top_up.tokens, now)
        self.lots.append(lot)
        if top_up.lot_id is not None:
            self.recent = (*self.recent, top_up.lot_id)[-RECENT_TOP_UPS:]
        self.events.append(LedgerEvent(
            top_up.kind, lot.left, lot.id, model=lot.model, expires_at=lot.expires_at, reference=lot.reference,
            reason=top_up.reason, actor=top_up.actor,
        ))
        return lot, False

    def deduct(self, tokens: int, *, reason: str, actor: str | None, now: datetime) -> None:
        """A negative adjustment: general lots first, then packs, each earliest expiry first; never below 0."""
        lots = [*self.drawable(None, now), *sorted(
            (lot for lot in self.lots if lot.model is not None and lot.left > 0 and not lot.expired(now)),
            key=Lot.order,
        )]
        if tokens > sum(lot.left for lot in lots):
            raise InvalidRequest(
                f"The balance has {self.available(now)} tokens; an adjustment cannot take it below 0.", param="tokens"
            )
        amount, taken = tokens, []
        for lot in lots:
            take = min(lot.left, tokens)
            if take:
                lot.left -= take
                tokens -= take
                taken.append(lot.id)
        self.events.append(LedgerEvent("adjustment", -amount, ",".join(taken), reason=reason, actor=actor))

    def convert(self, model: str, to_model: str | None, *, reason: str | None, actor: str | None) -> int:
        """Packs of `model` become packs of `to_model` (None: general credit); returns the tokens moved."""
        packs = [lot for lot in self.lots if lot.model == model]
        for lot in packs:
            lot.model = to_model
        moved = sum(lot.left for lot in packs)
        if packs:
            self.events.append(LedgerEvent(
                "conversion", 0, ",".join(lot.id for lot in packs), model=model, to_model=to_model, moved=moved,
                reason=reason, actor=actor,
            ))
        return moved

    def fold(self, now: datetime) -> None:
        """Expire what is left of expired lots (a ledger event each) and drop lots nothing refers to any more."""
        folds = 0
        for lot in self.lots:
            if lot.left and lot.expired(now) and folds < MAX_FOLDS_PER_WRITE:
                self.events.append(LedgerEvent("expiry", -lot.left, lot.id, model=lot.model,
                                               expires_at=lot.expires_at, reference=lot.reference))
                lot.left = 0
                folds += 1
        self.lots = [lot for lot in self.lots if not _spent(lot, now)]

    def _refusal(self, tokens: int, model: str | None, lots: list[Lot], now: datetime) -> str:
        usable = sum(lot.left for lot in lots)
        if not self.available(now):
            return "Your prepaid balance is empty. Add credit to continue."
        if model is not None and any(lot.model == model for lot in self.lots):
            return (f"Your prepaid pack for model '{model}' is used up or too low for this request, and general "
                    f"credit does not cover the rest: it needs {tokens} tokens, {usable} are available for this "
                    "model. Add credit to continue.")
        return (f"Your prepaid balance is too low for this request: it needs {tokens} tokens, {usable} are available"
                f"{'' if usable == self.available(now) else ' for this model (packs for other models do not count)'}"
                ". Add credit to continue.")


def _spent(lot: Lot, now: datetime) -> bool:
    if lot.held:
        return lot.expires_at is not None and lot.expires_at + STALE_HOLD <= now
    return lot.left == 0


def _new_id() -> str:
    return uuid.uuid4().hex[:16]


def dump_lots(lots: list[Lot]) -> str:
    return json.dumps([_lot_json(lot) for lot in lots], separators=(",", ":"))


def load_lots(text: str) -> list[Lot]:
    return [_lot_of(item) for item in json.loads(text)] if text else []


def _lot_json(lot: Lot) -> dict[str, Any]:
    row: dict[str, Any] = {"id": lot.id, "left": lot.left, "held": lot.held, "amount": lot.amount,
                           "exp": _ts(lot.expires_at), "at": _ts(lot.bought_at)}
    if lot.model is not None:
        row["model"] = lot.model
    if lot.reference is not None:
        row["ref"] = lot.reference
    return row


def _lot_of(item: dict[str, Any]) -> Lot:
    return Lot(
        id=str(item["id"]), left=int(item["left"]), expires_at=_dt(item.get("exp")), model=item.get("model"),
        reference=item.get("ref"), amount=int(item.get("amount", 0)), bought_at=_dt(item.get("at")),
        held=int(item.get("held", 0)),
    )


def _ts(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


def _dt(value: Any) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(int(value), UTC)
