"""Plan enforcement for the proxy (the limits.admission.Limiter contract).

PlanLimiter.admit checks, in order: the key's RPM/TPM buckets (limits.ratelimit, in memory), the key's shared
RPM/TPM budget across instances (limits.leases: leases in memory, topped up from Table Storage; off with
LIUTONG_RATE_SHARED_BUDGET=false), the owner's monthly included tokens ("quota" plans, limits.quota, in memory with a
background sync) or a reservation on the owner's prepaid balance ("prepaid" plans, limits.balance, one
compare-and-swap on the lots the model may draw on). A later refusal gives back what the earlier steps took. The
model check (plan.allows) stays with the caller: it is a 403, not a limit.

The admission's `headers` are the x-ratelimit-* ones, and for prepaid plans x-liutong-balance-remaining: the
available balance just after the reservation. settle(plan_tokens=actual) corrects the TPM bucket, counts
the month's usage and settles the reservation; refund() gives back the tokens (the request still counts for RPM).
Either happens once; later calls are ignored.

Tables: "quota", "balances" and "ratebudget" (layouts in limits.quota, limits.balance and limits.budget). A background
task, started by the first admit, syncs quota counters, retries deferred balance updates and gives back idle rate leases
every quota_sync_interval_seconds; flush() does it now and close() stops the task, writes what is pending and gives
every lease back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime

from core.clock import utc_now
from core.errors import LiutongError
from core.settings import Settings
from core.tables import Tables
from keystore.principal import Principal
from limits.balance import BalanceState, Hold, PrepaidBalances
from limits.budget import SharedBuckets
from limits.lease import NO_SHARE, Share
from limits.leases import SharedRates
from limits.plans import Plan
from limits.quota import MonthlyQuota, tracks_quota
from limits.ratelimit import RateLimiter, RateTicket, rate_headers

log = logging.getLogger(__name__)

QUOTA_TABLE = "quota"
BALANCE_TABLE = "balances"
RATE_TABLE = "ratebudget"
BALANCE_HEADER = "x-liutong-balance-remaining"
NO_HOLD = Hold(0)


class PlanAdmission:
    def __init__(
        self, limiter: PlanLimiter, owner: str, plan: Plan, ticket: RateTicket, share: Share, hold: Hold
    ) -> None:
        self.headers = {**ticket.headers, BALANCE_HEADER: str(hold.remaining)} if hold else ticket.headers
        self.reserved = int(hold)
        self._hold = hold
        self.shortfall = 0  # prepaid: tokens used beyond what the balance could cover
        self._limiter, self._owner, self._plan, self._ticket, self._share = limiter, owner, plan, ticket, share
        self._done = False

    async def settle(self, *, plan_tokens: int) -> None:
        if self._done:
            return
        self._done = True
        actual = max(0, plan_tokens)
        self._limiter.rates.correct(self._ticket, actual)
        self._share.correct(actual)
        if tracks_quota(self._plan):
            self._limiter.quota.add(self._owner, actual)
        if self.reserved:
            self.shortfall = await self._limiter.balances.settle(self._owner, self._hold, actual)

    async def refund(self) -> None:
        if self._done:
            return
        self._done = True
        self._limiter.rates.give_back(self._ticket, request=False)
        self._share.give_back(request=False)
        if self.reserved:
            await self._limiter.balances.refund(self._owner, self._hold)


class PlanLimiter:
    def __init__(
        self,
        tables: Tables,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utc_now,
        background: bool = True,
    ) -> None:
        self.rates = RateLimiter(clock=clock)
        self.quota = MonthlyQuota(tables.table(QUOTA_TABLE), now=now)
        self.balances = PrepaidBalances(tables.table(BALANCE_TABLE), now=now)
        self.shared = (
            SharedRates(
                SharedBuckets(tables.table(RATE_TABLE)), lease_fraction=settings.rate_lease_fraction,
                outage_share=settings.rate_outage_share, clock=_wall_clock(now),
            )
            if settings.rate_shared_budget
            else None
        )
        self._interval = settings.quota_sync_interval_seconds
        self._background = background
        self._task: asyncio.Task[None] | None = None

    async def admit(
        self, principal: Principal, plan: Plan, *, model_alias: str, estimated_plan_tokens: int
    ) -> PlanAdmission:
        """Let a call through or raise RateLimited / InsufficientQuota (both carry the x-ratelimit-* headers)."""
        self._start()
        estimate = max(0, estimated_plan_tokens)
        ticket = self.rates.take(principal.key_id, plan, estimate)
        share = NO_SHARE
        try:
            if self.shared is not None:
                share = await self.shared.take(principal.key_id, plan, estimate)
            await self.quota.check(principal.owner, plan)
            hold = NO_HOLD
            if plan.mode == "prepaid":
                hold = await self.balances.reserve(principal.owner, estimate, model=model_alias)
        except BaseException as error:
            share.give_back(request=True)
            self.rates.give_back(ticket, request=True)
            if isinstance(error, LiutongError):
                error.headers = {**rate_headers(ticket.buckets), **error.headers}
            raise
        return PlanAdmission(self, principal.owner, plan, ticket, share, hold)

    async def credit(self, owner: str, tokens: int) -> int:
        """Add prepaid tokens to an owner ("dep-…" / "team-…"); returns the available balance."""
        return await self.balances.credit(owner, tokens)

    async def balance(self, owner: str) -> BalanceState:
        return await self.balances.get(owner)

    async def flush(self) -> None:
        """Write pending quota increments, refresh shared totals, retry deferred balance updates, return idle leases."""
        await self.quota.sync()
        await self.balances.retry_deferred()
        if self.shared is not None:
            await self.shared.sync()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.balances.close()
        await self.flush()
        if self.shared is not None:
            await self.shared.close()

    def _start(self) -> None:
        if self._background and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._sync_forever())

    async def _sync_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except Exception:
                log.exception("limits sync failed; retrying in %s s", self._interval)


def _wall_clock(now: Callable[[], datetime]) -> Callable[[], float]:
    # Unix seconds for the shared buckets; time.time is the same as utc_now at an eighth of its cost.
    return time.time if now is utc_now else lambda: now().timestamp()
