"""The customers' own usage view (GET /v1/usage): the caller's account this UTC month, known from its key alone.

principal (the key) → its owner's month to date (usage.month_to_date: in memory, refreshes shared by all callers)
→ the owner's keys (one index query + one point read per key) and, on a prepaid plan, its balance (one point
read), kept OWNER_TTL_SECONDS per owner: a caller in a loop costs no more storage than one every few seconds
→ the answer (proxy.account_view): by day and model, per key, included tokens left and overage as metering bills.
Everything is selected by principal.owner: no other owner's usage, keys or balance is read into the answer.
Cost of a call: no storage read of usage; the owner's keys and balance at most once per OWNER_TTL_SECONDS;
CPU for the owner's own (day, group) entries and keys.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from core.errors import PermissionDenied
from keystore.models import KeyRecord
from keystore.principal import Principal
from limits.balance import BalanceState
from limits.plans import Plan
from proxy.account_view import summary_view
from usage.month_to_date import LIVE_TTL_SECONDS, MonthToDate

# Keys (status, last use) and balance are shown as fresh as the live hours' usage.
OWNER_TTL_SECONDS = LIVE_TTL_SECONDS
MAX_OWNERS = 10_000


class KeyLister(Protocol):
    async def list_for_owner(self, *, deployment_id: str | None = None, team: str | None = None) -> list[KeyRecord]:
        ...


@dataclass(frozen=True)
class _Account:
    keys: list[KeyRecord]
    balance: BalanceState | None


class AccountUsage:
    def __init__(
        self,
        *,
        month: MonthToDate,
        plans: Callable[[str], Plan | None],
        keys: KeyLister,
        balance: Callable[[str], Awaitable[BalanceState]],
        clock: Callable[[], float] = time.monotonic,
        ttl_seconds: float = OWNER_TTL_SECONDS,
    ) -> None:
        self._month = month
        self._plans = plans
        self._keys = keys
        self._balance = balance
        self._clock = clock
        self._ttl = ttl_seconds
        self._accounts: OrderedDict[str, tuple[float, asyncio.Future[_Account]]] = OrderedDict()

    async def summary(self, principal: Principal) -> dict[str, Any]:
        plan = self._plans(principal.plan_id)
        if plan is None:
            raise PermissionDenied("Your key's plan is not available.", code="plan_not_available")
        usage = await self._month.owner(principal.owner)
        account = await self._account(principal, plan)
        return summary_view(usage, plan, self._plans, account.keys, account.balance)

    async def _account(self, principal: Principal, plan: Plan) -> _Account:
        """Callers of one owner within the TTL share one load; a failed load is not kept."""
        owner = principal.owner
        entry = self._accounts.get(owner)
        if entry is None or self._clock() - entry[0] >= self._ttl:
            entry = (self._clock(), asyncio.ensure_future(self._load(principal, plan)))
            entry[1].add_done_callback(_retrieved)
            self._accounts[owner] = entry
            self._accounts.move_to_end(owner)
            while len(self._accounts) > MAX_OWNERS:
                self._accounts.popitem(last=False)
        try:
            return await asyncio.shield(entry[1])
        except Exception:
            if self._accounts.get(owner) is entry:
                del self._accounts[owner]
            raise

    async def _load(self, principal: Principal, plan: Plan) -> _Account:
        keys, balance = await asyncio.gather(self._keys_of(principal), self._prepaid(principal.owner, plan))
        return _Account(keys, balance)

    async def _keys_of(self, principal: Principal) -> list[KeyRecord]:
        if principal.deployment_id:
            return await self._keys.list_for_owner(deployment_id=principal.deployment_id)
        return await self._keys.list_for_owner(team=principal.team)

    async def _prepaid(self, owner: str, plan: Plan) -> BalanceState | None:
        return await self._balance(owner) if plan.mode == "prepaid" else None


def _retrieved(future: asyncio.Future[_Account]) -> None:
    # A load whose callers all left still finishes; its error is theirs, not an unretrieved one.
    if not future.cancelled():
        future.exception()
