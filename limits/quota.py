"""Monthly included tokens (plan mode "quota"), shared by every instance through one counter entity.

Table `quota`: PartitionKey = owner key (limits.owners.owner_key), RowKey = UTC month "YYYY-MM",
property `used` (Int64) = plan tokens settled that month by all instances (a call counts in the month it settles).
No rollover: a new month is a new row.

The hot path does no storage round trip. Each instance keeps, per owner and month, the shared total it last saw
and its own settled increments not yet written. `sync()` (run every quota_sync_interval_seconds by the limiter)
merges the increments into the entity with an ETag compare-and-swap loop and takes the total it wrote or read,
which brings in the other instances' usage. Only an owner's first call of the month on an instance waits for one
read; if storage is down then, the call goes through and the next sync catches up.

Overshoot bound (overage "block"): calls are admitted while month-to-date < included and are never cut off
mid-call, so usage can pass the included tokens by the calls in flight when it crosses, plus what the instances
settle before they see each other's usage: at most N instances x (sync interval + one flush) x the owner's token
rate per instance. Example: 3 instances, 5 s, 2,000 plan tokens/s each -> about 30,000 tokens over.
A flush whose reply is lost (timeout after the write landed) is retried and counted twice: the error blocks early,
never late. Billing does not use this counter: overage is billed from usage records.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables.aio import TableClient

from core.errors import InsufficientQuota, StorageUnavailable
from core.tables import storage_errors, write_if_unchanged
from limits.owners import int64, owner_key, read_int
from limits.plans import Plan

log = logging.getLogger(__name__)

MAX_CAS_ATTEMPTS = 20
# Views idle this long are dropped (and re-read on their next call) so sync() does not poll them forever.
IDLE_VIEW = timedelta(minutes=15)
_NEVER = datetime.min.replace(tzinfo=UTC)


def month_of(at: datetime) -> str:
    if at.tzinfo is not UTC:
        at = at.astimezone(UTC)
    return f"{at.year:04d}-{at.month:02d}"  # strftime is ten times slower, and this runs twice per call


def tracks_quota(plan: Plan) -> bool:
    return plan.mode == "quota" and plan.monthly_included_tokens is not None


@dataclass
class _View:
    key: str
    month: str
    shared: int = 0  # the entity's total when last read or written
    pending: int = 0  # settled here, not yet merged into the entity
    tried: bool = False  # the hot path reads at most once; sync() does the rest
    seen: datetime = _NEVER
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def used(self) -> int:
        return self.shared + self.pending


class MonthlyQuota:
    def __init__(self, table: TableClient, *, now: Callable[[], datetime]) -> None:
        self._table = table
        self._now = now
        self._views: dict[tuple[str, str], _View] = {}
        self._sync_lock = asyncio.Lock()

    async def check(self, owner: str, plan: Plan) -> None:
        """Raise InsufficientQuota when a "block" plan's month-to-date usage has reached its included tokens."""
        included = plan.monthly_included_tokens
        if not tracks_quota(plan) or included is None or plan.overage != "block":
            return
        view = self._view(owner)
        if not view.tried:
            await self._first_read(view)
        if view.used >= included:
            raise InsufficientQuota(
                f"You exceeded your monthly included tokens ({included}); check your plan and billing details."
            )

    def add(self, owner: str, plan_tokens: int) -> None:
        if plan_tokens > 0:
            self._view(owner).pending += plan_tokens

    def used(self, owner: str) -> int:
        """Month-to-date plan tokens as this instance sees them."""
        return self._view(owner).used

    async def sync(self) -> None:
        """Merge pending increments into the shared counters and refresh every view's total."""
        async with self._sync_lock:
            views = list(self._views.values())
            await asyncio.gather(*(self._sync_view(v) for v in views))
            now = self._now()
            for view in views:
                if view.pending == 0 and (view.month != month_of(now) or now - view.seen > IDLE_VIEW):
                    self._views.pop((view.key, view.month), None)

    def _view(self, owner: str) -> _View:
        now = self._now()
        key, month = owner_key(owner), month_of(now)
        view = self._views.get((key, month))
        if view is None:
            view = self._views[(key, month)] = _View(key, month)
        view.seen = now
        return view

    async def _first_read(self, view: _View) -> None:
        await self._sync_view(view, first=True)

    async def _sync_view(self, view: _View, *, first: bool = False) -> None:
        # One merge per view at a time: two would both add the same pending delta.
        async with view.lock:
            if first and view.tried:
                return
            view.tried = True
            try:
                await self._merge(view)
            except StorageUnavailable as error:
                log.warning("quota counter not synced (%s); kept %d pending tokens", error.code, view.pending)

    async def _merge(self, view: _View) -> None:
        for _ in range(MAX_CAS_ATTEMPTS):
            delta = view.pending
            total, etag = await self._read(view)
            if delta == 0:
                view.shared = total
                return
            if await self._write(view, total + delta, etag):
                view.shared = total + delta
                view.pending -= delta  # settles that arrived meanwhile stay pending
                return
        log.warning("quota counter %s/%s contended; retrying on the next sync", view.key, view.month)

    async def _read(self, view: _View) -> tuple[int, str | None]:
        try:
            with storage_errors():
                entity = await self._table.get_entity(view.key, view.month)
        except ResourceNotFoundError:
            return 0, None
        return read_int(entity, "used"), str(entity.metadata["etag"])

    async def _write(self, view: _View, total: int, etag: str | None) -> bool:
        """False when another writer got there first (the caller re-reads)."""
        entity = {"PartitionKey": view.key, "RowKey": view.month, "used": int64(total)}
        return await write_if_unchanged(self._table, entity, etag) is not None
