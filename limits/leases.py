"""RPM/TPM that hold across instances: each instance spends leases taken in slices from the key's shared buckets.

A key's RPM and TPM are token buckets in Table Storage (limits.budget: capacity L, refilled at L per minute). An
instance takes units from them in slices and admits calls from what it holds, its lease (limits.lease), in memory:
the hot path does no I/O while the lease covers the call. Below half its target a lease is topped up in the
background; only a call that finds it short waits for storage (at most SYNC_WAIT_SECONDS). When the shared buckets,
as last seen and refilled since, lack what the call needs, it is refused at once, without a round trip, with the
time until they should hold that and a slice at least: short calls are refused until then (plus up to half as
jitter, so that instances take turns): a saturated key costs each instance one exchange per slice of refill (0.6 s
at the default fraction) whatever its limit, and its calls pass in slices rather than one by one. What a lease does
not use goes back: the excess of refunds and corrections with its next exchange, a lease idle for a sync interval at
the next sync (limits.limiter runs it every LIUTONG_QUOTA_SYNC_INTERVAL_SECONDS), everything at close.

Slice: S = max(1, ceil(L x LIUTONG_RATE_LEASE_FRACTION)). A lease is topped up to its target: S, or for tokens the
largest estimate since the last sync when that is larger (a call is never split over leases). An exchange started
for calls waiting on an empty lease also takes what they need, so a burst is served in one round trip; those units
are theirs from the moment it commits (they count as admitted then), and the lease keeps at most its target.

Bound. Units move only from the shared bucket to a lease (taken), from a lease to a call (admitted) and back
(returned, capped at L). So in any interval [t, t+T] the N instances together admit at most
    B(t) + L x T / 60 + N x S
where B(t) <= L is the shared bucket's level at t; one instance alone, with its bucket at B(t), admits
B(t) + L x T / 60. The excess over one instance is at most N x S (tokens: N x max(S, the largest estimate within a
sync interval)).
A minute from a full bucket: 2L + N x S (one instance: 2L); a minute from an empty one (the burst spent): L + N x S.
Example: 600 RPM, fraction 0.01 -> S = 6; 2 instances: at most 612 in a saturated minute, 40 instances: 840.
Besides: clock skew of d seconds between instances adds at most L x d / 60 once (the bucket's `at` never moves
back); settled tokens above the estimate are a debt taken from the next leases, as on one instance; a lost write is
never repeated and an instance that stops without close (the Functions worker has no shutdown hook) takes its lease
with it: fewer calls pass, never more. Each instance's own buckets (limits.ratelimit) still apply.

Outage: when storage fails, or a lease cannot be had within SYNC_WAIT_SECONDS, the instance stops waiting for
storage and admits from a local bucket of LIUTONG_RATE_OUTAGE_SHARE x L (default 1: per-instance limits, as
without sharing) while it retries in the background every OFFLINE_RETRY_SECONDS; the bound above holds again once
storage answers. Never a 500 from here.

Headers: x-ratelimit-* come from the instance's own buckets (limits.ratelimit): remaining and reset are this
instance's view, an approximation of the key's shared state. A call the shared budget refuses carries this
lease's remaining units for the refused limit and the time until the shared bucket should cover it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable

from core.errors import RateLimited
from limits.budget import SharedBuckets, Units
from limits.lease import NO_SHARE, Lease, Share, limits_of
from limits.plans import Plan
from limits.ratelimit import Bucket, rate_limited

log = logging.getLogger(__name__)

# A call waits this long for storage at most; slower than that, the instance runs on its outage share.
SYNC_WAIT_SECONDS = 1.0
OFFLINE_RETRY_SECONDS = 1.0
_EPSILON = 1e-9


class SharedRates:
    def __init__(
        self, buckets: SharedBuckets, *, lease_fraction: float, outage_share: float, clock: Callable[[], float]
    ) -> None:
        self._buckets = buckets
        self._fraction = lease_fraction
        self._outage_share = outage_share
        self._clock = clock
        self._leases: dict[str, Lease] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def take(self, key_id: str, plan: Plan, tokens: int) -> Share:
        """Take 1 request and `tokens` from the key's shared budget, or raise RateLimited taking nothing."""
        limits = limits_of(plan)
        if not limits:
            return NO_SHARE
        cost: Units = {kind: 1.0 if kind == "requests" else float(tokens) for kind in limits}
        lease = self._lease(key_id, limits, cost)
        if not lease.offline and not lease.covers(cost):
            await self._wait_for_units(lease, cost)
        share = self._from_fallback(lease, cost) if lease.offline else self._from_lease(lease, cost)
        lease.inflight += 1
        return share

    def holding(self, key_id: str) -> Units:
        """What this instance holds of a key's budget (tests, benchmarks)."""
        lease = self._leases.get(key_id)
        return dict(lease.held) if lease is not None else {}

    async def sync(self) -> None:
        """Give back what idle leases hold and what corrections returned; forget idle keys."""
        for key_id, lease in list(self._leases.items()):
            idle, lease.used = not lease.used, False
            lease.shrink()
            if lease.fetching is not None:
                continue
            self._give_back(lease, everything=idle)
            if idle and lease.inflight == 0:
                del self._leases[key_id]
        await self._drain()

    async def close(self) -> None:
        """Give everything back."""
        await self._drain()
        for lease in self._leases.values():
            self._give_back(lease, everything=True)
        await self._drain()
        self._leases.clear()

    def _lease(self, key_id: str, limits: dict[str, int], cost: Units) -> Lease:
        lease = self._leases.get(key_id)
        if lease is None or lease.limits != limits:
            lease = self._new_lease(key_id, limits, lease)
        for kind, amount in cost.items():
            lease.target[kind] = max(lease.target[kind], amount)  # back to the slice at the next sync
        lease.used = True
        return lease

    def _new_lease(self, key_id: str, limits: dict[str, int], old: Lease | None) -> Lease:
        if old is not None:  # the plan changed: give the old lease back, start afresh
            self._give_back(old, everything=True)
        slices = {kind: max(1, math.ceil(limit * self._fraction)) for kind, limit in limits.items()}
        lease = Lease(
            key_id, limits, slices, held=dict.fromkeys(limits, 0.0), target={k: float(s) for k, s in slices.items()},
            seen_left={kind: float(limit) for kind, limit in limits.items()}, seen_at=self._clock(),
        )
        self._leases[key_id] = lease
        return lease

    async def _wait_for_units(self, lease: Lease, cost: Units) -> None:
        """Await the top-up in flight, then, if still short, one for every waiting call when the shared buckets
        should have the units."""
        lease.wait(cost, +1)
        try:
            for _ in range(2):
                task = lease.fetching
                if task is None:
                    now = self._clock()
                    if now < lease.dry_until:
                        return
                    wait = lease.wait_for(cost, now)
                    if wait > 0:
                        # Short calls look no more until then: a saturated key costs each instance one exchange
                        # per slice of refill, not one per unit. Jitter, or the instance that looked first wins
                        # every slice.
                        lease.dry_until = now + wait * random.uniform(1, 1.5)  # noqa: S311
                        return
                    task = self._start(lease, want=lease.wants())
                done, _ = await asyncio.wait({task}, timeout=SYNC_WAIT_SECONDS)
                if not done:
                    self._go_offline(lease)
                if lease.offline or lease.covers(cost):
                    return
        finally:
            lease.wait(cost, -1)

    def _from_lease(self, lease: Lease, cost: Units) -> Share:
        now = self._clock()
        if not lease.covers(cost):
            kind = next(k for k, amount in cost.items() if lease.held[k] + _EPSILON < amount)
            wait = max(0.001, lease.wait_for(cost, now))
            raise _refusal(kind, lease.limits[kind], lease.held[kind], cost[kind], wait)
        for kind, amount in cost.items():
            lease.held[kind] -= amount
        if lease.fetching is None and lease.low() and lease.wait_for(_a_slice_more(lease), now) <= 0:
            self._start(lease, want=lease.wants())
        return Share(lease, cost)

    def _from_fallback(self, lease: Lease, cost: Units) -> Share:
        now = self._clock()
        if lease.fetching is None and now >= lease.retry_at:
            self._start(lease, want=lease.wants())  # in the background: calls do not wait for a failing store
        buckets = self._fallback_buckets(lease, now)
        for kind, amount in cost.items():
            bucket = buckets[kind]
            bucket.refill(now)
            if not bucket.fits(int(amount)):
                wait = max(0.001, max(b.wait_for(cost[k]) for k, b in buckets.items()))
                raise _refusal(kind, bucket.limit, bucket.level, amount, wait)
        for kind, amount in cost.items():
            buckets[kind].level -= amount
        return Share(lease, cost, fallback=True)

    def _fallback_buckets(self, lease: Lease, now: float) -> dict[str, Bucket]:
        if not lease.fallback:
            for kind, limit in lease.limits.items():
                share = max(1, math.floor(limit * self._outage_share))
                lease.fallback[kind] = Bucket(share, float(share), now)
        return lease.fallback

    def _go_offline(self, lease: Lease) -> None:
        if not lease.offline:
            log.warning("shared rate budget unreachable; key %s runs on its outage share", lease.key_id)
        lease.offline, lease.retry_at = True, self._clock() + OFFLINE_RETRY_SECONDS

    def _give_back(self, lease: Lease, *, everything: bool) -> None:
        if any(lease.returning.values()) or (everything and any(lease.held.values())):
            self._start(lease, want={}, everything=everything)

    def _start(self, lease: Lease, *, want: dict[str, int], everything: bool = False) -> asyncio.Task[None]:
        give, lease.returning = lease.returning, {}
        if everything:
            give = {kind: give.get(kind, 0.0) + lease.held[kind] for kind in lease.limits}
            lease.held = dict.fromkeys(lease.limits, 0.0)
        task = asyncio.get_running_loop().create_task(self._exchange(lease, want, give))
        lease.fetching = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _exchange(self, lease: Lease, want: dict[str, int], give: Units) -> None:
        try:
            lease.seen(await self._buckets.exchange(lease.key_id, lease.limits, want, give, self._clock()))
        except Exception:  # whatever storage does, calls go on (on the outage share)
            log.warning("shared rate budget exchange failed for key %s", lease.key_id, exc_info=True)
            self._go_offline(lease)
        finally:
            lease.fetching = None

    async def _drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _a_slice_more(lease: Lease) -> Units:
    """A slice more than the lease holds, for every limit below its low-water mark: a background top-up goes to
    storage only when the shared buckets, as last seen, should have that much (not when a saturated key is dry)."""
    held, low = lease.held, {kind for kind in lease.limits if lease.held[kind] < lease.target[kind] / 2}
    return {kind: held[kind] + lease.slices[kind] for kind in low}


def _refusal(kind: str, limit: int, remaining: float, requested: float, wait: float) -> RateLimited:
    remaining_units = max(0, math.floor(remaining + _EPSILON))
    error = rate_limited(kind, limit, remaining_units, int(requested), wait, {})
    error.headers[f"x-ratelimit-remaining-{kind}"] = str(remaining_units)
    return error
