"""Aggregates == a recount of the raw rows, whatever happens to transactions (hypothesis, real Azurite).

Random runs of two writers on the same partitions (a live writer and one replaying a dead writer's journal),
with crashes (a writer's cached state lost between transactions), answers lost after a commit (records
journaled although they committed), transactions that fail before reaching storage, duplicated transactions
(sent again by a transport) and delayed ones (sent after the client gave up on them). After every run the
journal is replayed: every record is then stored exactly once and every partition's aggregates and header
equal the recount of its raw rows, and the reader agrees.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import StorageUnavailable
from core.settings import Settings
from core.tables import Tables
from tests.usage.support import assert_consistent, create_usage_tables
from usage.committer import AggregatingCommitter
from usage.copy import AggregateCopy
from usage.records import UsageRecord
from usage.store import RAW_ROWS, Op, TransactionConflict, UsageStore, row_key

HOUR = datetime(2031, 1, 2, 3, tzinfo=UTC)
TEAMS, MODELS = ("t1", "t2", "t3"), ("m1", "m2")


class FaultyStore(UsageStore):
    """The real store, with faults injected on request."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.faults: list[str] = []  # consumed one per transaction: "lose-answer", "fail", "hold"
        self.last: Sequence[Op] | None = None
        self.held: list[Sequence[Op]] = []

    async def apply(self, ops: Sequence[Op]) -> str:
        fault = self.faults.pop(0) if self.faults else None
        if fault == "fail":
            raise StorageUnavailable("injected: never reached storage")
        if fault == "hold":
            self.held.append(ops)  # sent later, after the client gave up on it
            raise StorageUnavailable("injected: timed out")
        etag = await super().apply(ops)
        self.last = ops
        if fault == "lose-answer":
            raise StorageUnavailable("injected: committed, answer lost")
        return etag


class World:
    def __init__(self, tables: Tables) -> None:
        self.tables = tables
        self.shard = secrets.token_hex(3)
        self.copy = AggregateCopy(tables)
        self.stores = [FaultyStore(tables.table("usage")) for _ in range(2)]
        self.committers = [self._committer(i) for i in range(2)]
        self.journal: list[UsageRecord] = []
        self.sent: list[UsageRecord] = []
        self.number = 0

    def _committer(self, index: int) -> AggregatingCommitter:
        # Writer 0 owns the shard; writer 1 writes into it as a journal replay of a dead writer would.
        own = self.shard if index == 0 else "other"
        return AggregatingCommitter(self.stores[index], own_shard=own, register=self.copy.register,
                                    committed=self.copy.committed)

    def records(self, groups: Sequence[tuple[int, int]], late: bool) -> list[UsageRecord]:
        made = []
        for team, model in groups:
            self.number += 1
            made.append(UsageRecord(
                request_id=f"r{self.number}", at=HOUR + timedelta(seconds=self.number) - late * timedelta(hours=1),
                team=TEAMS[team], key_id="k", plan_id="p", model_alias=MODELS[model], endpoint="/v1/chat/completions",
                status=200 if self.number % 5 else 500, latency_ms=1, prompt_tokens=self.number,
                completion_tokens=1, total_tokens=self.number + 1, plan_tokens=2 * self.number,
                estimated=self.number % 7 == 0, reasoning_tokens=self.number % 2, auto=self.number % 3 == 0,
                unit="image" if self.number % 4 == 0 else None, quantity=2 if self.number % 4 == 0 else 0,
            ))
        return made

    async def write(self, index: int, records: list[UsageRecord], *, fresh: bool = True) -> None:
        if fresh:
            self.sent += records
        try:
            await self.committers[index].write(records, self.shard)
        except (StorageUnavailable, TransactionConflict):
            self.journal += records  # what the writer does: journal, replay later

    async def act(self, action: tuple[Any, ...]) -> None:
        kind, index = action[0], action[1]
        store = self.stores[index]
        if kind == "write":
            await self.write(index, self.records(action[2], action[3]))
        elif kind == "crash":
            self.committers[index] = self._committer(index)
        elif kind == "fault":
            store.faults.append(action[2])
        elif kind == "duplicate" and store.last is not None:
            try:
                await UsageStore.apply(store, store.last)
            except TransactionConflict:
                pass
            else:
                raise AssertionError("a transaction sent twice committed twice")
        elif kind == "release" and store.held:
            with contextlib.suppress(TransactionConflict):  # built from a state that changed since: refused whole
                await UsageStore.apply(store, store.held.pop(0))
        elif kind == "replay":
            await self.replay(index)

    async def replay(self, index: int) -> None:
        pending, self.journal = self.journal, []
        if pending:
            await self.write(index, pending, fresh=False)


GROUPS = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 1)), min_size=1, max_size=40)
ACTIONS = st.one_of(
    st.tuples(st.just("write"), st.integers(0, 1), GROUPS, st.booleans()),
    st.tuples(st.just("crash"), st.integers(0, 1)),
    st.tuples(st.just("fault"), st.integers(0, 1), st.sampled_from(["lose-answer", "fail", "hold"])),
    st.tuples(st.just("duplicate"), st.integers(0, 1)),
    st.tuples(st.just("release"), st.integers(0, 1)),
    st.tuples(st.just("replay"), st.integers(0, 1)),
)


async def run(make_settings: Callable[..., Settings], actions: list[tuple[Any, ...]]) -> None:
    config = make_settings(table_prefix="p" + secrets.token_hex(6))  # a table pair of its own per example
    tables = Tables(config)
    try:
        await create_usage_tables(tables, config)
        world = World(tables)
        for action in actions:
            await world.act(action)
        for store in world.stores:
            store.faults.clear()
        for store in world.stores:  # the delayed transactions finally arrive
            while store.held:
                with contextlib.suppress(TransactionConflict):
                    await UsageStore.apply(store, store.held.pop(0))
        while world.journal:
            await world.replay(0)
        await world.copy.flush()
        stored = [row["RowKey"] async for row in tables.table("usage").query_entities(RAW_ROWS, select=["RowKey"])]
        assert sorted(stored) == sorted(row_key(r) for r in world.sent)  # each record exactly once
        assert await assert_consistent(tables) == len(world.sent)
    finally:
        await tables.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=st.lists(ACTIONS, min_size=1, max_size=14))
def test_aggregates_always_equal_a_recount(make_settings: Callable[..., Settings], actions: list[Any]) -> None:
    asyncio.run(run(make_settings, actions))
