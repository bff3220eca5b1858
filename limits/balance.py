"""Prepaid balances (plan mode "prepaid") that never go negative, even with many instances at once.

Table `balances`: PartitionKey = owner key (limits.owners.owner_key), RowKey = "balance"; properties
  available (Int64)  plan tokens that can still be reserved; never below 0
  reserved (Int64)   plan tokens held by calls in flight
  shortfall (Int64)  tokens used beyond a reservation that the balance could not cover (flagged, not charged)
  batches (String)   ids of the last 128 writes, to tell a write whose reply was lost from one that failed
Every write is conditional on the ETag of the state it was computed from, and every operation keeps available >= 0,
so no interleaving of instances can drive it negative.

- reserve(estimate), before the upstream call: available -= estimate, reserved += estimate, or InsufficientQuota
  (429, x-should-retry: false) when estimate > available. A reserve is at least 1 token: an empty balance refuses.
- settle(reserved, actual): releases the reservation and charges min(actual, available). The estimate includes
  max_tokens, so actual > reserved means it was wrong: the excess is charged only as far as the balance covers it;
  the rest is added to `shortfall` and logged. Never negative wins over never under-charged.
- refund(reserved) = settle with 0. credit(tokens): available += tokens (operators, tests).

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
from dataclasses import dataclass, field, replace

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables.aio import TableClient

from core.errors import InsufficientQuota, LiutongError, ServiceUnavailable
from core.tables import storage_errors, write_if_unchanged
from limits.owners import int64, owner_key, read_int

log = logging.getLogger(__name__)

ROW = "balance"
MAX_CAS_ATTEMPTS = 50
# A doubtful write is checked against this many later writes of the owner; retry_deferred runs every few seconds.
RECENT_BATCHES = 128


@dataclass
class BalanceState:
    available: int = 0
    reserved: int = 0
    shortfall: int = 0
    batches: tuple[str, ...] = ()


Apply = Callable[[BalanceState], int]
Result = int | LiutongError


@dataclass
class _Op:
    apply: Apply
    future: asyncio.Future[int]
    keep: bool  # settles/refunds: never dropped, retried when storage is unreachable
    undo: Apply | None = None  # how to take back a reserve whose caller is gone


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


def _reserve(tokens: int) -> Apply:
    def apply(state: BalanceState) -> int:
        if tokens > state.available:
            raise InsufficientQuota(
                f"Your prepaid balance is too low for this request: it needs {tokens} tokens, "
                f"{state.available} are available. Add credit to continue."
            )
        state.available -= tokens
        state.reserved += tokens
        return tokens

    return apply


def _release(reserved: int, actual: int) -> Apply:
    def apply(state: BalanceState) -> int:
        state.available += reserved
        state.reserved -= reserved
        charged = min(actual, state.available)
        state.available -= charged
        state.shortfall += actual - charged
        return actual - charged

    return apply


def _credit(tokens: int) -> Apply:
    def apply(state: BalanceState) -> int:
        state.available += tokens
        return state.available

    return apply


def _trial(state: BalanceState, batch: list[_Op], batch_id: str) -> tuple[BalanceState | None, list[Result]]:
    """The batch applied to `state`: the state to write (None when nothing changed) and each op's result."""
    trial = replace(state)
    results = [_run(op.apply, trial) for op in batch]
    if trial == state:
        return None, results
    trial.batches = (*state.batches, batch_id)[-RECENT_BATCHES:]
    return trial, results


def _undos(batch: list[_Op], results: list[Result] | None) -> list[Apply]:
    """How to take back the reserves of a write that may have landed although their callers saw an error."""
    if results is None:
        return []
    return [op.undo for op, r in zip(batch, results, strict=True) if op.undo and not isinstance(r, LiutongError)]


def _run(apply: Apply, state: BalanceState) -> Result:
    try:
        return apply(state)
    except InsufficientQuota as refused:
        return refused


class PrepaidBalances:
    def __init__(self, table: TableClient) -> None:
        self._table = table
        self._accounts: dict[str, _Account] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def reserve(self, owner: str, tokens: int) -> int:
        """Hold `tokens` (at least 1) or raise InsufficientQuota; returns what was held."""
        tokens = max(1, tokens)
        return await self._submit(owner, _reserve(tokens), undo=_release(tokens, 0))

    async def settle(self, owner: str, reserved: int, actual: int) -> int:
        """Turn a reservation into the actual charge; returns the shortfall (0 unless actual > what was covered)."""
        shortfall = await self._submit(owner, _release(reserved, max(0, actual)), keep=True)
        if shortfall:
            log.warning("prepaid call used %d tokens more than the balance covered (owner %s)", shortfall, owner)
        return shortfall

    async def refund(self, owner: str, reserved: int) -> None:
        await self._submit(owner, _release(reserved, 0), keep=True)

    async def credit(self, owner: str, tokens: int) -> int:
        """Add tokens; returns the available balance after."""
        if tokens <= 0:
            raise ValueError("credit must be positive")
        return await self._submit(owner, _credit(tokens))

    async def get(self, owner: str) -> BalanceState:
        state, _ = await self._read(owner_key(owner))
        return state

    async def retry_deferred(self) -> None:
        """Re-check batches whose write failed or may have landed, and re-apply or undo them."""
        for account in list(self._accounts.values()):
            if account.doubts:
                await self._resolve_doubts(account)

    async def close(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.retry_deferred()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        stranded = sum(len(a.doubts) for a in self._accounts.values())
        if stranded:
            log.error("%d prepaid balance updates could not be written before shutdown", stranded)

    async def _submit(self, owner: str, apply: Apply, *, keep: bool = False, undo: Apply | None = None) -> int:
        account = self._account(owner_key(owner))
        op = _Op(apply, asyncio.get_running_loop().create_future(), keep, undo)
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
                batch, account.queue = account.queue, []
                await self._commit(account, [op for op in batch if op.keep or not op.future.cancelled()])
        finally:
            account.running = False

    async def _commit(self, account: _Account, batch: list[_Op]) -> None:
        batch_id, results = "", None
        try:
            for attempt in range(MAX_CAS_ATTEMPTS):
                if account.state is None:
                    account.state, account.etag = await self._read(account.key)
                batch_id = uuid.uuid4().hex[:16]
                trial, results = _trial(account.state, batch, batch_id)
                if trial is not None:
                    etag = await self._write(account.key, trial, account.etag)
                    if etag is None:
                        account.state = None  # another writer got there first: re-read and re-apply
                        await asyncio.sleep(random.uniform(0, 0.001 * attempt))  # noqa: S311 - jitter
                        continue
                    account.state, account.etag = trial, etag
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
                    account.queue.append(_Op(op.undo, asyncio.get_running_loop().create_future(), keep=True))
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
        for doubt in doubts:
            if doubt.batch_id in state.batches:
                account.queue.extend(_Op(u, asyncio.get_running_loop().create_future(), keep=True) for u in doubt.undo)
            else:
                account.queue.extend(doubt.redo)
        self._kick(account)

    async def _read(self, key: str) -> tuple[BalanceState, str | None]:
        try:
            with storage_errors():
                entity = await self._table.get_entity(key, ROW)
        except ResourceNotFoundError:
            return BalanceState(), None
        batches = tuple(str(entity.get("batches", "")).split())
        available, reserved, shortfall = (read_int(entity, name) for name in ("available", "reserved", "shortfall"))
        return BalanceState(available, reserved, shortfall, batches), str(entity.metadata["etag"])

    async def _write(self, key: str, state: BalanceState, etag: str | None) -> str | None:
        entity = {
            "PartitionKey": key,
            "RowKey": ROW,
            "available": int64(state.available),
            "reserved": int64(state.reserved),
            "shortfall": int64(state.shortfall),
            "batches": " ".join(state.batches),
        }
        return await write_if_unchanged(self._table, entity, etag)
