"""Refused proxy calls (401, 403, 429) counted per UTC hour, owner and key, by status and code: never the key.

Table `refusals`: PartitionKey = hour key "YYYYMMDDHH"; RowKey = "{instance}|{owner}|{key}|{status}|{code}" (each
part through core.tables.table_key) where
owner is "dep-…" / "team-…" and key the key id when the key resolved, else owner "-" and key "p-" + 16 hex of
the SHA-256 of the presented key's display prefix ("malformed" when it is not a Liutong key at all);
property count (Int64) = that instance's refusals of the group in that hour so far.

Each instance owns its rows: it counts in memory and replaces the rows that changed at every flush, so no
compare-and-swap and no contention between instances; readers sum the instances. A crash loses at most one flush
interval of counts (these are diagnostics, not billing). An instance keeps at most MAX_GROUPS groups an hour:
past that, refusals count under owner "-" and key "other", so a flood of random keys cannot grow the table
without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from core.hours import floor_hour, hour_key, parse_hour_key
from core.tables import Tables, int64, int_value, rows_of, storage_errors, table_key

log = logging.getLogger(__name__)

TABLE = "refusals"
MAX_GROUPS = 5_000
BATCH = 100  # entities per Table transaction
UNRESOLVED = "-"
OTHER = "other"
MALFORMED = "malformed"


@dataclass(frozen=True)
class RefusalCount:
    hour: datetime
    owner: str
    key: str
    status: int
    code: str
    count: int


def key_reference(display_prefix: str | None) -> str:
    """What identifies a key that did not resolve: a hash of its display prefix (None: not a Liutong key)."""
    if not display_prefix:
        return MALFORMED
    return "p-" + hashlib.sha256(display_prefix.encode()).hexdigest()[:16]


class RefusalCounter:
    def __init__(
        self, tables: Tables, *, interval_seconds: float = 5.0, background: bool = True,
        observe: Callable[[int, str | None, BaseException | None], None] | None = None,
    ) -> None:
        """observe(status, code, error): told of every refusal as it is counted (core.metrics)."""
        self._observe = observe
        self._table: TableClient = tables.table(TABLE)
        self._instance = secrets.token_hex(4)
        self._interval = interval_seconds
        self._background = background
        self._counts: dict[str, Counter[tuple[str, str, int, str]]] = {}
        self._dirty: dict[str, set[tuple[str, str, int, str]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def record(
        self, at: datetime, *, owner: str | None, key: str, status: int, code: str | None,
        error: BaseException | None = None,
    ) -> None:
        if self._observe is not None:
            self._observe(status, code, error)
        hour = hour_key(floor_hour(at))
        counts = self._counts.setdefault(hour, Counter())
        group = (owner or UNRESOLVED, key, status, code or "-")
        if group not in counts and len(counts) >= MAX_GROUPS:
            group = (UNRESOLVED, OTHER, status, code or "-")
        counts[group] += 1
        self._dirty.setdefault(hour, set()).add(group)
        self._start()

    async def flush(self) -> None:
        """Writes every group that changed since the last flush, up to 100 rows of an hour per transaction;
        what fails stays dirty for the next flush."""
        async with self._lock:
            pending = [(hour, sorted(groups)) for hour, groups in self._dirty.items()]
            self._dirty = {}
            chunks = [(hour, groups[i:i + BATCH]) for hour, groups in pending for i in range(0, len(groups), BATCH)]
            for done, (hour, groups) in enumerate(chunks):
                try:
                    await self._write(hour, groups)
                except Exception:
                    for again_hour, again in chunks[done:]:
                        self._dirty.setdefault(again_hour, set()).update(again)
                    raise
            self._forget_old_hours()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def _write(self, hour: str, groups: list[tuple[str, str, int, str]]) -> None:
        operations = []
        for owner, key, status, code in groups:
            entity = {
                # Owners and key ids are key-safe as the service makes them; table_key keeps any other text valid.
                "PartitionKey": hour,
                "RowKey": f"{self._instance}|{table_key(owner)}|{table_key(key)}|{status}|{table_key(code)}",
                "owner": owner, "key": key, "status": status, "code": code,
                "count": int64(self._counts[hour][(owner, key, status, code)]),
            }
            operations.append(("upsert", entity, {"mode": UpdateMode.REPLACE}))
        with storage_errors():
            await self._table.submit_transaction(operations)

    def _forget_old_hours(self) -> None:
        # Counts of an hour two hours gone are written and will not grow again.
        hours = sorted(self._counts)
        for hour in hours[:-2]:
            if hour not in self._dirty:
                del self._counts[hour]

    def _start(self) -> None:
        if self._background and self._task is None:
            with contextlib.suppress(RuntimeError):  # no running loop: the caller flushes itself
                self._task = asyncio.get_running_loop().create_task(self._flush_forever())

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except Exception as error:  # noqa: BLE001 - retried at the next interval
                log.warning("refusal counts not written (%s); retrying", type(error).__name__)


async def read_refusals(tables: Tables, first: datetime, end: datetime) -> list[RefusalCount]:
    """Refusals of the whole hours first..end (end excluded), summed over instances."""
    totals: Counter[tuple[str, str, str, int, str]] = Counter()
    query = "PartitionKey ge @first and PartitionKey lt @end"
    params = {"first": hour_key(floor_hour(first)), "end": hour_key(floor_hour(end))}
    async for row in rows_of(tables.table(TABLE), query, params):
        totals[(row["PartitionKey"], row["owner"], row["key"], int(row["status"]), row["code"])] += int_value(
            row["count"])
    return [
        RefusalCount(parse_hour_key(hour), owner, key, status, code, count)
        for (hour, owner, key, status, code), count in sorted(totals.items())
    ]
