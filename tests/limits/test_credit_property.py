"""Top-ups, expiries and reservations on several instances never lose or duplicate a token (hypothesis, real Azurite).

Random runs of three PrepaidBalances on one owner (each its own cache, as instances are), with forced ETag conflicts
(another writer rewrites the row just before a conditional write), retried top-ups, packs, a clock that moves past
expiries, and bursts of concurrent reserves. Throughout, the balance is never negative; at the end, with every call
settled, every token credited is available, charged or expired according to the ledger, each Idempotency-Key credited
once, and no call to one model drew on another model's pack.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError
from azure.data.tables import UpdateMode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.settings import Settings
from core.tables import Tables, table_name
from limits.balance import Hold, PrepaidBalances
from limits.ledger import read_ledger
from limits.limiter import BALANCE_TABLE
from limits.lots import TopUp

OWNER = "team-prop"
T0 = datetime(2031, 5, 1, tzinfo=UTC)


class ConflictingTable:
    """A TableClient whose next `conflicts` conditional writes find the row rewritten (a new ETag) by someone else."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.conflicts = inner, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def _interfere(self) -> None:
        if self.conflicts:
            self.conflicts -= 1
            row = await self.inner.get_entity(OWNER, "balance")
            with contextlib.suppress(ResourceModifiedError):  # someone else changed it meanwhile: a conflict too
                await self.inner.update_entity(row, mode=UpdateMode.REPLACE, etag=row.metadata["etag"],
                                               match_condition=MatchConditions.IfNotModified)

    async def update_entity(self, *args: Any, **kwargs: Any) -> Any:
        await self._interfere()
        return await self.inner.update_entity(*args, **kwargs)

    async def submit_transaction(self, ops: Any, **kwargs: Any) -> Any:
        if ops[0][0] == "update":
            await self._interfere()
        return await self.inner.submit_transaction(ops, **kwargs)


class World:
    def __init__(self, tables: Tables) -> None:
        self.at = T0
        self.tables = [ConflictingTable(tables.table(BALANCE_TABLE)) for _ in range(3)]
        self.instances = [PrepaidBalances(t, now=lambda: self.at) for t in self.tables]  # type: ignore[arg-type]
        self.holds: list[Hold] = []  # not settled yet
        self.every_hold: list[Hold] = []
        self.charged = 0

    async def act(self, action: tuple[Any, ...]) -> None:
        kind, n = action[0], action[1]
        balances = self.instances[n]
        if kind in WRITES:
            self.tables[n].conflicts += action[-1]
        if kind == "top_up":
            _, _, tokens, days, model, key, _ = action
            expiry = None if days is None else self.at + timedelta(hours=days)
            await balances.top_up(OWNER, TopUp(tokens, expiry, model=model, lot_id=f"key{key}"))
        elif kind == "reserve":
            await self.reserve(balances, action[2], action[3])
        elif kind == "burst":
            await asyncio.gather(*(self.reserve(self.instances[i % 3], t, "m") for i, t in enumerate(action[2])))
        elif kind == "settle" and self.holds:
            hold = self.holds.pop(action[2] % len(self.holds))
            shortfall = await balances.settle(OWNER, hold, action[3])
            self.charged += action[3] - shortfall
        elif kind == "advance":
            self.at += timedelta(hours=action[2])
        elif kind == "conflict":
            self.tables[n].conflicts += action[2]
        elif kind == "sweep":
            await balances.sweep(OWNER)
        assert (await balances.get(OWNER)).available >= 0

    async def reserve(self, balances: PrepaidBalances, tokens: int, model: str) -> None:
        try:
            hold = await balances.reserve(OWNER, tokens, model=model)
            self.holds.append(hold)
            self.every_hold.append(hold)
        except Exception as error:
            assert type(error).__name__ == "InsufficientQuota", error


INSTANCE = st.integers(0, 2)
CONFLICTS = st.integers(0, 2)  # forced before the action's own write
WRITES = {"top_up", "reserve", "settle", "sweep"}
ACTIONS = st.one_of(
    st.tuples(st.just("top_up"), INSTANCE, st.integers(1, 60), st.none() | st.integers(1, 72),
              st.sampled_from([None, "p"]), st.integers(0, 4), CONFLICTS),
    st.tuples(st.just("reserve"), INSTANCE, st.integers(1, 40), st.sampled_from(["m", "p"]), CONFLICTS),
    st.tuples(st.just("burst"), INSTANCE, st.lists(st.integers(1, 20), min_size=2, max_size=8)),
    st.tuples(st.just("settle"), INSTANCE, st.integers(0, 20), st.integers(0, 50), CONFLICTS),
    st.tuples(st.just("advance"), INSTANCE, st.integers(1, 48)),
    st.tuples(st.just("conflict"), INSTANCE, st.integers(1, 3)),
    st.tuples(st.just("sweep"), INSTANCE, CONFLICTS),
)


async def run(make_settings: Callable[..., Settings], actions: list[tuple[Any, ...]]) -> None:
    config = make_settings(table_prefix="c" + secrets.token_hex(6))
    tables = Tables(config)
    try:
        await tables.service.create_table_if_not_exists(table_name(config, BALANCE_TABLE))
        world = World(tables)
        await world.instances[0].top_up(OWNER, TopUp(100, world.at + timedelta(days=30), lot_id="seed"))
        for action in actions:
            await world.act(action)
        for hold in world.holds:
            await world.instances[0].settle(OWNER, hold, 0)
        await world.instances[0].sweep(OWNER)
        for balances in world.instances:
            await balances.close()
        state = await world.instances[0].get(OWNER)
        entries = [entry.event async for entry in read_ledger(world.tables[0].inner, OWNER)]
        top_ups = [e for e in entries if e.kind == "top_up"]
        expired = sum(-e.tokens + e.moved for e in entries if e.kind == "expiry")
        assert state.reserved == 0 and state.available >= 0
        assert sum(e.tokens for e in top_ups) == state.available + world.charged + expired
        assert len({e.lot for e in top_ups}) == len(top_ups)  # each Idempotency-Key credited once
        pack_lots = {e.lot for e in top_ups if e.model == "p"}
        assert not any(lot in pack_lots for hold in world.every_hold if hold.model == "m" for lot, _ in hold.lots)
    finally:
        await tables.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=st.lists(ACTIONS, min_size=4, max_size=20))
def test_no_token_is_lost_or_duplicated(make_settings: Callable[..., Settings], actions: list[Any]) -> None:
    asyncio.run(run(make_settings, actions))
