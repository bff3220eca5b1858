"""Records when keys were last used, off the hot path and at most once per interval per key."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

logger = logging.getLogger("liutong.keystore.last_used")

# Throttle bookkeeping is dropped for keys idle longer than the interval once it grows past this.
_PRUNE_ABOVE = 10_000


class LastUsedWriter(Protocol):
    async def record_last_used(self, key_hash: str, *, at: datetime) -> bool: ...


class LastUsedRecorder:
    """`touch` is synchronous and does no I/O; a lazily started task does the writes."""

    def __init__(
        self,
        repository: LastUsedWriter,
        *,
        min_interval_seconds: float = 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._repository = repository
        self._interval = min_interval_seconds
        self._clock = clock
        self._latest: dict[str, datetime] = {}  # newest use not yet written
        self._due: set[str] = set()  # keys whose interval has passed: the worker writes them
        self._scheduled_at: dict[str, float] = {}  # clock() of each key's last scheduled write
        self._wake = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def touch(self, key_hash: str, now: datetime) -> None:
        if self._closing:
            return
        latest = self._latest.get(key_hash)
        if latest is None or now > latest:
            self._latest[key_hash] = now
        tick = self._clock()
        scheduled = self._scheduled_at.get(key_hash)
        if scheduled is not None and tick - scheduled < self._interval:
            return  # kept in _latest: the next due touch, flush or close writes it
        self._scheduled_at[key_hash] = tick
        self._due.add(key_hash)
        self._prune(tick)
        if self._ensure_worker():
            self._wake.set()

    async def flush(self) -> None:
        """Writes every pending use now, including throttled ones."""
        async with self._write_lock:
            batch, self._latest = self._latest, {}
            self._due.clear()
            await self._write(batch)

    async def close(self) -> None:
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            self._wake.set()
            await task
        await self.flush()

    def _ensure_worker(self) -> bool:
        if self._task is not None and not self._task.done():
            return True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False  # no loop (sync caller): flush() or a later touch writes it
        self._task = loop.create_task(self._run(), name="liutong-last-used")
        return True

    async def _run(self) -> None:
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            async with self._write_lock:
                due, self._due = self._due, set()
                batch = {h: self._latest.pop(h) for h in due if h in self._latest}
                await self._write(batch)

    async def _write(self, batch: dict[str, datetime]) -> None:
        for key_hash, at in batch.items():
            try:
                await self._repository.record_last_used(key_hash, at=at)
            except Exception as error:  # noqa: BLE001 - bookkeeping must never fail a caller
                # The hash prefix identifies the key for the operator; it reveals nothing of the key.
                logger.warning(
                    "last-used write failed for key hash %s…: %s", key_hash[:8], type(error).__name__
                )

    def _prune(self, tick: float) -> None:
        if len(self._scheduled_at) <= _PRUNE_ABOVE:
            return
        self._scheduled_at = {
            h: t for h, t in self._scheduled_at.items() if tick - t < self._interval or h in self._latest
        }
