"""A usage partition's aggregate state: its header and cumulative group counters, read back or built up.

Layout in usage.store. A state is what the partition holds after some committed transaction (or nothing
yet); the committer builds the next one from it and commits both together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables.aio import TableClient

from core.tables import int64, int_value, rows_of, storage_errors
from usage.groups import (
    COUNTERS,
    GROUP_COLUMNS,
    REQUESTS,
    USAGE_COLUMNS,
    Counts,
    Group,
    add_usage,
    counters_of,
    group_key,
    group_of_row,
    zero,
)
from usage.store import AGGREGATE_PREFIX, HEADER, Entity

_POINT_READS = 16


@dataclass
class PartitionState:
    partition: str
    etag: str | None = None  # None: no header yet, the next transaction inserts it
    version: int = 0
    counts: Counts = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return sum(counters[REQUESTS] for counters in self.counts.values())


def header_entity(partition: str, version: int, requests: int) -> Entity:
    return {"PartitionKey": partition, "RowKey": HEADER, "version": int64(version), "requests": int64(requests)}


def aggregate_entity(partition: str, group: Group, counters: Iterable[int], row_key: str | None = None) -> Entity:
    entity: Entity = {"PartitionKey": partition, "RowKey": row_key or AGGREGATE_PREFIX + group_key(group)}
    entity.update({name: value for name, value in zip(GROUP_COLUMNS, group, strict=True) if value is not None})
    entity.update({name: int64(value) for name, value in zip(COUNTERS, counters, strict=True)})
    return entity


async def load_state(client: TableClient, partition: str, **options: Any) -> PartitionState:
    """The partition's committed aggregate state. A partition without a header holds, if anything, rows
    written before aggregates existed: they are recounted, and the next transaction inserts the header."""
    header: Any = None
    counts: Counts = {}
    query = "PartitionKey eq @pk and RowKey ge @lo"
    async for row in rows_of(client, query, {"pk": partition, "lo": "~"}, **options):
        if row["RowKey"] == HEADER:
            header = row
        elif row["RowKey"].startswith(AGGREGATE_PREFIX):
            counts[group_of_row(row)] = counters_of(row)
    if header is None:
        return PartitionState(partition, counts=await recount(client, partition, **options))
    return PartitionState(partition, header.metadata["etag"], int_value(header.get("version")), counts)


async def recount(client: TableClient, partition: str, **options: Any) -> Counts:
    """The raw rows of one partition, counted (cost: the partition's rows)."""
    counts: Counts = {}
    query = "PartitionKey eq @pk and RowKey lt @hi"
    select = [*USAGE_COLUMNS, *GROUP_COLUMNS]
    async for row in rows_of(client, query, {"pk": partition, "hi": "~"}, select, **options):
        group = group_of_row(row)
        add_usage(counts.setdefault(group, zero()), row)
    return counts


async def header_requests(client: TableClient, partition: str) -> int:
    """What the partition's header says it counts (0 when it has none): one point read."""
    with storage_errors():
        try:
            header = await client.get_entity(partition, HEADER, select=["requests"])
        except ResourceNotFoundError:
            return 0
    return int_value(header.get("requests"))


async def existing(client: TableClient, partition: str, row_keys: Iterable[str], **options: Any) -> set[str]:
    """Which of these rows exist (point reads, a few at a time)."""
    gate = asyncio.Semaphore(_POINT_READS)

    async def exists(row_key: str) -> str | None:
        async with gate:
            with storage_errors():
                try:
                    await client.get_entity(partition, row_key, select=["RowKey"], **options)
                except ResourceNotFoundError:
                    return None
            return row_key

    found = await asyncio.gather(*(exists(key) for key in row_keys))
    return {key for key in found if key is not None}
