"""One instance's lease of a key's shared RPM/TPM budget, and what one call took from it (limits.leases uses them).

Pure: no I/O, no clock (times are passed in). Units per limit kind ("requests", "tokens"); a lease holds at most its
target (limits.leases says why that bounds what N instances admit), the rest goes back with the next exchange.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field

from limits.budget import Exchanged, Units
from limits.plans import Plan
from limits.ratelimit import WINDOW_SECONDS, Bucket

_EPSILON = 1e-9


def limits_of(plan: Plan) -> dict[str, int]:
    return {kind: limit for kind, limit in (("requests", plan.rpm), ("tokens", plan.tpm)) if limit is not None}


@dataclass
class Lease:
    """One key's units held by this instance, and what it last saw of the shared buckets."""

    key_id: str
    limits: dict[str, int]
    slices: dict[str, int]
    held: Units
    target: Units
    seen_left: Units
    seen_at: float
    returning: Units = field(default_factory=dict)  # excess over the target, given back with the next exchange
    waiting: Units = field(default_factory=dict)  # what the calls waiting for an exchange need
    fetching: asyncio.Task[None] | None = None
    offline: bool = False
    retry_at: float = 0.0
    dry_until: float = 0.0  # short calls are refused until then without looking again
    fallback: dict[str, Bucket] = field(default_factory=dict)
    used: bool = True  # since the last sync
    inflight: int = 0

    def covers(self, cost: Units) -> bool:
        return all(self.held[kind] + _EPSILON >= amount for kind, amount in cost.items())

    def put_back(self, kind: str, amount: float, room: float = 0.0) -> None:
        self.held[kind] += amount
        excess = self.held[kind] - self.target[kind] - room
        if excess > 0:
            self.held[kind] -= excess
            self.returning[kind] = self.returning.get(kind, 0.0) + excess

    def shrink(self) -> None:
        """Back to one slice: what a large call's target left beyond it is given back."""
        for kind, size in self.slices.items():
            self.target[kind] = float(size)
            self.put_back(kind, 0.0)

    def wants(self) -> dict[str, int]:
        """Enough for the waiting calls, and the target left once they have taken theirs."""
        return {
            kind: max(0, math.ceil(self.target[kind] + self.waiting.get(kind, 0.0) - self.held[kind] - _EPSILON))
            for kind in self.limits
        }

    def wait(self, cost: Units, sign: int) -> None:
        for kind, amount in cost.items():
            self.waiting[kind] = self.waiting.get(kind, 0.0) + sign * amount

    def wait_for(self, cost: Units, now: float) -> float:
        """0 when the shared buckets, as last seen, hold what this lease lacks for `cost`; else the seconds until they
        hold that and a slice at least (what is left of `dry_until`, once a short call has been told so)."""
        if now < self.dry_until:
            return self.dry_until - now
        waits = [0.0]
        for kind, amount in cost.items():
            short = amount - self.held[kind]
            if short > _EPSILON:
                rate = self.limits[kind] / WINDOW_SECONDS
                seen = self.seen_left[kind] + (now - self.seen_at) * rate
                if seen + _EPSILON < short:
                    waits.append((max(short, self.slices[kind]) - seen) / rate)
        return max(waits)

    def low(self) -> bool:
        return any(self.held[kind] < self.target[kind] / 2 for kind in self.limits)

    def seen(self, result: Exchanged) -> None:
        for kind, granted in result.granted.items():
            # Refunds during the exchange may have filled the lease meanwhile: beyond the target and the waiting
            # calls' needs, the units go back.
            self.put_back(kind, granted, room=self.waiting.get(kind, 0.0))
        self.seen_left, self.seen_at = dict(result.left), result.at
        self.offline, self.dry_until = False, 0.0


@dataclass
class Share:
    """What one admitted call took from its key's lease (or from the outage bucket)."""

    lease: Lease | None
    cost: Units
    fallback: bool = False

    def correct(self, actual_tokens: int) -> None:
        """Settle: the actual tokens replace the estimate; more than estimated is a debt."""
        if "tokens" in self.cost:
            self._put_back("tokens", self.cost["tokens"] - actual_tokens)
        self._done()

    def give_back(self, *, request: bool) -> None:
        if "tokens" in self.cost:
            self._put_back("tokens", self.cost["tokens"])
        if request and "requests" in self.cost:
            self._put_back("requests", 1)
        self._done()

    def _put_back(self, kind: str, amount: float) -> None:
        if self.lease is None:
            return
        if self.fallback:
            self.lease.fallback[kind].put_back(amount)
        else:
            self.lease.put_back(kind, amount)

    def _done(self) -> None:
        if self.lease is not None:
            self.lease.inflight -= 1
            self.lease = None  # once


NO_SHARE = Share(None, {})
