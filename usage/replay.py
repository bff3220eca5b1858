"""Replaying usage journals: this writer's own, then those dead writers left in the same directory.

Records go back through the writer's `write` under the shard they were journaled for, so they land in the
partitions they would have landed in (usage.committer makes that idempotent: a record already stored
conflicts and is not counted again). A file is emptied (own) or removed (a dead writer's) only after all of
it committed; layout and locking in usage.journal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from usage.journal import Orphan, UsageJournal, orphan_paths, try_adopt
from usage.records import UsageRecord

log = logging.getLogger("usage.writer")

Write = Callable[[list[UsageRecord], str], Awaitable[bool]]  # False: not every record committed
JournalCall = Callable[..., Awaitable[Any]]  # runs a blocking journal method under the writer's journal lock


class JournalReplay:
    def __init__(
        self, *, journal: UsageJournal, directory: Path, shard: str, write: Write, journal_call: JournalCall,
        replayed: Callable[[int], None],
    ) -> None:
        self._journal = journal
        self._dir = directory
        self._shard = shard
        self._write = write
        self._journal_call = journal_call
        self._replayed = replayed
        self.lock = asyncio.Lock()

    async def run(self) -> None:
        async with self.lock:
            try:
                if await self._replay_own():
                    await self._replay_orphans()
            except Exception:
                log.exception("Replaying the usage journal failed.")

    async def _replay_own(self) -> bool:
        size = await asyncio.to_thread(self._journal.size)
        if not await self._replay_file(self._journal, size, self._shard):
            return False
        if size:
            await self._journal_call(self._journal.discard, size)
        return True

    async def _replay_orphans(self) -> None:
        for path in await asyncio.to_thread(orphan_paths, self._dir, self._journal.path):
            orphan = await asyncio.to_thread(try_adopt, path)
            if orphan is None:
                continue
            committed = False
            try:
                committed = await self._replay_file(orphan, await asyncio.to_thread(orphan.size), orphan.shard)
            finally:
                await asyncio.to_thread(orphan.close, remove=committed)
            if not committed:
                return
            log.info("Replayed the usage journal left by writer %s.", orphan.shard)

    async def _replay_file(self, journal: UsageJournal | Orphan, end: int, shard: str) -> bool:
        """Chunk by chunk, so a long outage's journal is neither loaded whole nor re-read in vain."""
        offset = 0
        while offset < end:
            records, offset = await asyncio.to_thread(journal.read_chunk, offset, end)
            if not await self._write(records, shard):
                return False
            self._replayed(len(records))
        return True
