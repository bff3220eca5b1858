"""Prepaid balances (plan mode "prepaid") that never go negative, even with many instances at once.

Table `balances`: PartitionKey = owner key (limits.owners.owner_key), RowKey = "balance"; properties
  available (Int64)  plan tokens that can still be reserved: the sum of the open lots; never below 0
  reserved (Int64)   plan tokens held by calls in flight
  shortfall (Int64)  tokens used beyond a reservation that the balance could not cover (flagged, not charged)
  lots (String)      the open lots, JSON (limits.lots): id, left, held, amount, exp, at, model, ref
  topups (String)    lot ids of the last top-ups: a retried top-up (same Idempotency-Key) credits nothing
  ledger (Int64)     the sequence number of the owner's last ledger row
  batches (String)   ids of the last 128 writes, to tell a write whose reply was lost from one that failed
A row without `lots` (written before lots existed) is one general lot without expiry.
Every write is conditional on the ETag of the state it was computed from, and every operation keeps available >= 0,
so no interleaving of instances can drive it negative. The ledger rows of a write (limits.ledger: top-ups, expiries,
conversions, adjustments) go in the same transaction.

- reserve(estimate, model), before the upstream call: moves estimate from the lots the model may draw on (its packs,
  then general lots, earliest expiry first) to held, or InsufficientQuota (429, x-should-retry: false) saying whether
  the balance or the model's pack ran out. A reserve is at least 1 token: an empty balance refuses.
- settle(hold, actual): charges actual from the held lots in the order they were held, gives the rest back to them;
  the estimate includes max_tokens, so actual > held means it was wrong: the excess is charged from what the model
  may draw on as far as it goes; the rest is added to `shortfall` and logged. Never negative wins over never
  under-charged.
- refund(hold) = settle with 0. top_up/credit add a lot; adjust, convert and sweep change lots with a ledger entry.
- Every write first folds expired lots away (limits.lots.Lots.fold); retry_deferred() also sweeps the owners this
  instance holds whose lots have expired.

Operations on one owner are group-committed per instance: those arriving while a write is in flight go together into
the next compare-and-swap (one round trip per batch, not per call); an ETag conflict re-reads and re-applies the
batch. Reserves fail closed (503) when storage is unreachable. Settles and refunds then succeed at once and are
retried by retry_deferred(): a batch whose write may have landed is checked against `batches` first, so nothing is
applied twice, and a reserve that landed although its caller saw an error is refunded.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables.aio import TableClient

from core.clock import utc_now
from core.errors import InsufficientQuota, LiutongError, ServiceUnavailable
from core.tables import storage_errors, write_if_unchanged
from limits.balance_state import (
    ROW,
    Apply,
    BalanceState,
    Hold,
    Result,
    TopUpResult,
    Undo,
    entity_of,
    has_expired,
    release_op,
    reserve_op,
    state_of,
    sweep_op,
    top_up_op,
    trial,
    undo_reserve,
)
from limits.ledger import ledger_rows, write_with_ledger
from limits.lots import Lot, TopUp
from limits.owners import owner_key

__all__ = ["BalanceState", "Hold", "PrepaidBalances", "TopUpResult"]
log = logging.getLogger(__name__)

MAX_CAS_ATTEMPTS = 50
# Operations with a ledger row in one write: a transaction holds at most 100 entities.
MAX_LEDGER_OPS = 40


@dataclass
class _Op:
    apply: Apply
    future: asyncio.Future[object]
    keep: bool  # settles/refunds: never dropped, retried when storage is unreachable
    undo: Undo | None = None  # how to take back a reserve whose caller is gone
    ledger: bool = False  # writes ledger rows


@dataclass
class _Doubt:
    """A batch whose write may or may not have landed."""

    batch_id: str
    redo: list[_Op]
    undo: list[Apply]


@dataclass
class _Account:
    key: str
    queue: list[_Op] = field(default_factory=list)
    doubts: list[_Doubt] = field(default_factory=list)
    running: bool = False
    state: BalanceState | None = None  # last state read or written, with its etag
    etag: str | None = None


def _undos(batch: list[_Op], results: list[Result] | None) -> list[Apply]:
    """How to take back the reserves of a write that may have landed although their callers saw an error."""
    if results is None:
        return []
    return [op.undo(r) for op, r in zip(batch, results, strict=True) if op.undo and not isinstance(r, LiutongError)]


class PrepaidBalances:
    def __init__(self, table: TableClient, *, now: Callable[[], datetime] = utc_now) -> None:
        self._table = table
        self._now = now
        self._accounts: dict[str, _Account] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def reserve(self, owner: str, tokens: int, *, model: str | None = None) -> Hold:
        """Hold `tokens` (at least 1) from the lots `model` may draw on, or raise InsufficientQuota."""
        tokens = max(1, tokens)
        return cast(Hold, await self._submit(owner, reserve_op(tokens, model), undo=undo_reserve))

    async def settle(self, owner: str, hold: Hold, actual: int) -> int:
        """Turn a reservation into the actual charge; returns the shortfall (0 unless actual > what was covered)."""
        shortfall = cast(int, await self._submit(owner, release_op(hold, max(0, actual)), keep=True))
        if shortfall:
            log.warning("prepaid call used %d tokens more than the balance covered (owner %s)", shortfall, owner)
        return shortfall

    async def refund(self, owner: str, hold: Hold) -> None:
        await self._submit(owner, release_op(hold, 0), keep=True)

    async def credit(self, owner: str, tokens: int) -> int:
        """Add a general lot without expiry (tests, demos); returns the available balance after."""
        if tokens <= 0:
            raise ValueError("credit must be positive")
        return (await self.top_up(owner, TopUp(tokens, None))).available

    async def top_up(self, owner: str, top_up: TopUp) -> TopUpResult:
        """Add a lot (once per top_up.lot_id); raises Conflict when the owner has too many open lots."""
        lot, duplicate = cast(tuple[Lot, bool], await self._submit(owner, top_up_op(top_up), ledger=True))
        return TopUpResult(lot, duplicate, await self._available(owner))

    async def deduct(self, owner: str, tokens: int, *, reason: str, actor: str | None) -> int:
        """Take tokens off (a negative adjustment); InvalidRequest when the balance would go below 0."""

        def apply(state: BalanceState, now: datetime) -> None:
            state.lots.deduct(tokens, reason=reason, actor=actor, now=now)

        await self._submit(owner, apply, ledger=True)
        return await self._available(owner)

    async def convert(self, owner: str, model: str, to_model: str | None, *, reason: str | None,
                      actor: str | None) -> int:
        """Packs for `model` become packs for `to_model` (None: general credit); returns the tokens moved."""

        def apply(state: BalanceState, now: datetime) -> int:
            return state.lots.convert(model, to_model, reason=reason, actor=actor)

        return cast(int, await self._submit(owner, apply, ledger=True))

    async def sweep(self, owner: str) -> int:
        """Fold the owner's expired lots away now (a write only if some have); returns the available balance."""
        return cast(int, await self._submit(owner, sweep_op, ledger=True))

    async def get(self, owner: str) -> BalanceState:
        """The stored state; `available` leaves out lots that have expired but are not folded away yet."""
        state, _ = await self._read(owner_key(owner))
        state.available = state.lots.available(self._now())
        return state

    async def retry_deferred(self) -> None:
        """Re-check batches whose write failed or may have landed, re-apply or undo them; fold expired lots."""
        now = self._now()
        for account in list(self._accounts.values()):
            if account.doubts:
                await self._resolve_doubts(account)
            elif account.state is not None and has_expired(account.state, now):
                future = asyncio.get_running_loop().create_future()
                account.queue.append(_Op(sweep_op, future, keep=True, ledger=True))
                self._kick(account)

    async def close(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.retry_deferred()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        stranded = sum(len(a.doubts) for a in self._accounts.values())
        if stranded:
            log.error("%d prepaid balance updates could not be written before shutdown", stranded)

    async def _available(self, owner: str) -> int:
        account = self._account(owner_key(owner))
        return account.state.available if account.state is not None else (await self.get(owner)).available

    async def _submit(
        self, owner: str, apply: Apply, *, keep: bool = False, undo: Undo | None = None, ledger: bool = False
    ) -> object:
        account = self._account(owner_key(owner))
        op = _Op(apply, asyncio.get_running_loop().create_future(), keep, undo, ledger)
        account.queue.append(op)
        self._kick(account)
        return await op.future

    def _account(self, key: str) -> _Account:
        if key not in self._accounts:
            self._accounts[key] = _Account(key)
        return self._accounts[key]

    def _kick(self, account: _Account) -> None:
        if not account.running and account.queue:
            account.running = True
            task = asyncio.get_running_loop().create_task(self._drain(account))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _drain(self, account: _Account) -> None:
        try:
            while account.queue:
                batch, account.queue = _next_batch(account.queue)
                await self._commit(account, [op for op in batch if op.keep or not op.future.cancelled()])
        finally:
            account.running = False

    async def _commit(self, account: _Account, batch: list[_Op]) -> None:
        batch_id, results = "", None
        try:
            fresh = False
            for attempt in range(MAX_CAS_ATTEMPTS):
                if account.state is None:
                    account.state, account.etag = await self._read(account.key)
                    fresh = True
                batch_id = uuid.uuid4().hex[:16]
                now = self._now()
                candidate, results = trial(account.state, [op.apply for op in batch], batch_id, now)
                if not fresh and any(isinstance(result, InsufficientQuota) for result in results):
                    # Refused on the state this instance remembers: credit may have come through another one since.
                    account.state = None
                    continue
                if candidate is not None:
                    etag = await self._write(account.key, candidate, account.etag, now)
                    if etag is None:
                        account.state = None  # another writer got there first: re-read and re-apply
                        await asyncio.sleep(random.uniform(0, 0.001 * attempt))  # noqa: S311 - jitter
                        continue
                    candidate.lots.events = []
                    account.state, account.etag = candidate, etag
                self._deliver(account, batch, results)
                return
            raise ServiceUnavailable("The prepaid balance is busy; retry.", code="balance_contended")
        except BaseException as error:
            unavailable = error if isinstance(error, ServiceUnavailable) else ServiceUnavailable("Balance failed.")
            doubt = _Doubt(batch_id, [op for op in batch if op.keep], _undos(batch, results))
            self._fail(account, batch, doubt, unavailable)
            if unavailable is not error:
                raise

    def _deliver(self, account: _Account, batch: list[_Op], results: list[Result]) -> None:
        for op, result in zip(batch, results, strict=True):
            if op.future.cancelled():
                if op.undo is not None and not isinstance(result, LiutongError):
                    future = asyncio.get_running_loop().create_future()
                    account.queue.append(_Op(op.undo(result), future, keep=True))
            elif not op.future.done():
                if isinstance(result, LiutongError):
                    op.future.set_exception(result)
                else:
                    op.future.set_result(result)

    def _fail(self, account: _Account, batch: list[_Op], doubt: _Doubt, error: LiutongError) -> None:
        account.state = None
        account.doubts.append(doubt)
        for op in batch:
            if op.future.done():
                continue
            if op.keep:
                op.future.set_result(0)  # the caller moves on; retry_deferred() finishes the job
            else:
                op.future.set_exception(error)

    async def _resolve_doubts(self, account: _Account) -> None:
        try:
            state, _ = await self._read(account.key)
        except ServiceUnavailable:
            return
        doubts, account.doubts = account.doubts, []
        loop = asyncio.get_running_loop()
        for doubt in doubts:
            if doubt.batch_id in state.batches:
                account.queue.extend(_Op(u, loop.create_future(), keep=True) for u in doubt.undo)
            else:
                account.queue.extend(doubt.redo)
        self._kick(account)

    async def _read(self, key: str) -> tuple[BalanceState, str | None]:
        try:
            with storage_errors():
                entity = await self._table.get_entity(key, ROW)
        except ResourceNotFoundError:
            return BalanceState(), None
        return state_of(entity), str(entity.metadata["etag"])

    async def _write(self, key: str, state: BalanceState, etag: str | None, now: datetime) -> str | None:
        entity = entity_of(key, state)
        if not state.lots.events:
            return await write_if_unchanged(self._table, entity, etag)
        first = state.ledger - len(state.lots.events) + 1
        rows = ledger_rows(key, state.lots.events, at=now, first=first, available_after=state.available)
        return await write_with_ledger(self._table, entity, etag, rows)


def _next_batch(queue: list[_Op]) -> tuple[list[_Op], list[_Op]]:
    """The ops of the next write, and the rest: at most MAX_LEDGER_OPS of them write ledger rows."""
    ledger = 0
    for n, op in enumerate(queue):
        ledger += op.ledger
        if ledger > MAX_LEDGER_OPS:
            return queue[:n], queue[n:]
    return queue, []
