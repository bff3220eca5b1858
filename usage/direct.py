"""Usage records written straight through the committer and the copy: no batching, no journal.

For tools and tests that hold records in hand (seeding, benchmarks); the proxy records through
usage.writer.UsageWriter, which adds batching, the journal and draining.
"""

from __future__ import annotations

from collections.abc import Iterable

from core.tables import Tables
from usage.committer import AggregatingCommitter
from usage.copy import AggregateCopy
from usage.records import UsageRecord
from usage.store import UsageStore, validate


async def write_records(tables: Tables, records: Iterable[UsageRecord], *, shard: str) -> int:
    """Commit the records (with their aggregates) under `shard`, then copy the aggregates; the transactions."""
    copy = AggregateCopy(tables)
    committer = AggregatingCommitter(
        UsageStore(tables.table("usage")), own_shard="", register=copy.register, committed=copy.committed
    )
    batch = list(records)
    for record in batch:
        validate(record)
    await committer.write(batch, shard)
    await copy.flush()
    return committer.transactions
