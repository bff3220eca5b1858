"""Commits usage records together with their partition's aggregates, so the two never disagree.

Each transaction spans one usage partition (an hour of one writer shard) and holds: the raw rows, inserted;
the cumulative counters of every group they touch, replaced; and the partition's header, inserted or
replaced if-match the ETag it was read or last written with. Why the aggregates always equal a recount of
the raw rows present:
- a transaction is atomic: its rows and the counters that count them land together or not at all;
- the header's ETag orders the transactions of a partition: one computed from a stale state (a retried or
  duplicated transaction, a delayed one the client gave up on, another writer replaying a dead writer's
  journal into the same partition) fails whole with 412, or 409 if it inserts a header that exists;
- a raw row is inserted, never replaced, so a record that is already there (committed by a transaction whose
  answer was lost, then replayed from the journal) fails the transaction with 409 instead of being counted
  twice.
On a conflict the committer reads the partition's state back, drops the records whose rows exist (already
counted) and tries again. On any other failure the outcome is unknown: the cached state is dropped (the next
transaction reads it back) and the records go to the journal, whose replay takes the same path.

Cost on the write path: per transaction one aggregate row per distinct group and the header, in the same
round trip; reading a state back happens only after a conflict, a failure or for a partition this process
did not create.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Sequence

from usage.groups import Group, add_record, group_of, zero
from usage.partition import PartitionState, aggregate_entity, existing, header_entity, load_state
from usage.records import UsageRecord
from usage.store import Op, TransactionConflict, UsageStore, partition_key, raw_row_op, row_key, split_partition

log = logging.getLogger(__name__)

TRANSACTION_MAX = 100  # entities in one entity-group transaction
_ATTEMPTS = 5
_CACHED_PARTITIONS = 64

# Called once per partition before its first transaction from this process: (hour key, shard).
Register = Callable[[str, str], Awaitable[None]]
# Called after each commit with the committed state.
Committed = Callable[[PartitionState], None]


async def _no_register(hour: str, shard: str) -> None:
    return None


def _no_committed(state: PartitionState) -> None:
    return None


class AggregatingCommitter:
    def __init__(
        self, store: UsageStore, *, own_shard: str, batch_max: int = TRANSACTION_MAX - 2,
        register: Register = _no_register, committed: Committed = _no_committed,
    ) -> None:
        self._store = store
        self._own_shard = own_shard
        self._batch_max = min(batch_max, TRANSACTION_MAX - 2)
        self._register = register
        self._committed = committed
        self._states: OrderedDict[str, PartitionState] = OrderedDict()
        self._known: set[str] = set()  # partitions registered (and, for the own shard, created) by this process
        self._locks: dict[str, asyncio.Lock] = {}
        self.transactions = 0
        self.conflicts = 0

    async def write(self, records: Sequence[UsageRecord], shard: str) -> None:
        """Commit every record. Raises StorageUnavailable (or any other error: whether the transaction in
        flight committed is unknown) or TransactionConflict (gave up after repeated conflicts)."""
        by_partition: dict[str, list[UsageRecord]] = {}
        for record in records:
            by_partition.setdefault(partition_key(record.at, shard), []).append(record)
        for partition, mine in by_partition.items():
            lock = self._locks.setdefault(partition, asyncio.Lock())
            async with lock:
                for chunk in self._chunks(mine):
                    await self._commit(partition, chunk)

    def _chunks(self, records: list[UsageRecord]) -> Iterator[list[UsageRecord]]:
        """Records, then one aggregate row per distinct group, then the header: at most TRANSACTION_MAX."""
        chunk: list[UsageRecord] = []
        groups: set[Group] = set()
        for record in records:
            group = group_of(record)
            grows = group not in groups
            full = len(chunk) + 1 + len(groups) + grows + 1 > TRANSACTION_MAX
            if chunk and (full or len(chunk) >= self._batch_max):
                yield chunk
                chunk, groups, grows = [], set(), True
            chunk.append(record)
            groups.add(group)
        if chunk:
            yield chunk

    async def _commit(self, partition: str, records: list[UsageRecord]) -> None:
        state = await self._state(partition)
        for _ in range(_ATTEMPTS):
            following, ops = _next(state, records)
            try:
                following.etag = await self._store.apply(ops)
            except TransactionConflict:
                self.conflicts += 1
                state, records = await self._resolve(partition, records)
                if not records:
                    return
                continue
            except BaseException:
                self._states.pop(partition, None)  # committed or not: unknown, read it back next time
                raise
            self.transactions += 1
            self._remember(following)
            self._committed(following)
            return
        self._states.pop(partition, None)
        raise TransactionConflict(f"usage partition {partition} kept changing under this writer")

    async def _state(self, partition: str) -> PartitionState:
        state = self._states.get(partition)
        if state is not None:
            self._states.move_to_end(partition)
            return state
        hour, shard = split_partition(partition)
        if partition not in self._known:
            await self._register(hour, shard)
            self._known.add(partition)
            if shard == self._own_shard:
                # A fresh shard's partition cannot exist yet; if it does, the header insert conflicts.
                return self._remember(PartitionState(partition))
        return self._remember(await load_state(self._store.client, partition, **self._store.call_options))

    async def _resolve(self, partition: str, records: list[UsageRecord]) -> tuple[PartitionState, list[UsageRecord]]:
        """After a conflict: the partition's committed state, and the records it does not hold yet."""
        state = self._remember(await load_state(self._store.client, partition, **self._store.call_options))
        keys = [row_key(record) for record in records]
        present = await existing(self._store.client, partition, keys, **self._store.call_options)
        if present:
            log.info("%d usage records were already committed to %s; not counted again.", len(present), partition)
        return state, [record for record in records if row_key(record) not in present]

    def _remember(self, state: PartitionState) -> PartitionState:
        self._states[state.partition] = state
        self._states.move_to_end(state.partition)
        while len(self._states) > _CACHED_PARTITIONS:
            self._states.popitem(last=False)
        return state

    def forget(self) -> None:
        """Drop every cached state (they are read back when needed)."""
        self._states.clear()


def _next(state: PartitionState, records: list[UsageRecord]) -> tuple[PartitionState, list[Op]]:
    """The state after these records, and the transaction that gets there."""
    counts = dict(state.counts)
    changed: set[Group] = set()
    ops = [raw_row_op(record, state.partition) for record in records]  # write() grouped them by partition_key
    for record in records:
        group = group_of(record)
        if group not in changed:
            counts[group] = list(counts.get(group) or zero())
            changed.add(group)
        add_record(counts[group], record)
    ops += [Op("replace", aggregate_entity(state.partition, group, counts[group])) for group in changed]
    following = PartitionState(state.partition, None, state.version + 1, counts)
    header = header_entity(state.partition, following.version, following.requests)
    ops.append(Op("insert", header) if state.etag is None else Op("update", header, state.etag))
    return following, ops
