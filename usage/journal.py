"""Local append-only journal of usage records that could not reach Table Storage.

One file per writer, `<dir>/<journal_key>/usage-<shard>.jsonl`: one JSON object per line holding
exactly the UsageRecord's fields (metadata only; `at` as ISO 8601), appended with O_APPEND and
fsync'd before the writer counts the record as durable. The shard in the file name lets whoever replays the file
rebuild the same PartitionKey, so a replay upserts the same rows the writer may already have
written (idempotent).

Each live writer holds an exclusive flock on its file; the kernel drops it when the process dies,
even by SIGKILL, so another writer sharing the directory can tell an orphan (lock free) from a live
journal (lock held) and adopt it. Linux/POSIX only, like the Functions Python host; flock is not
reliable on network file systems, so point the directory at local disk.

All methods block (file I/O): call them through asyncio.to_thread.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from usage.records import UsageRecord

log = logging.getLogger(__name__)

FIELDS = frozenset(field.name for field in dataclasses.fields(UsageRecord))
# Fields added after journals were first written: a line spilled by an older version still replays.
_REQUIRED = FIELDS - {"reasoning_tokens", "unit", "quantity", "auto", "byok"}
_PREFIX, _SUFFIX = "usage-", ".jsonl"
_CHUNK = 1 << 20


def default_dir() -> Path:
    return Path(tempfile.gettempdir()) / "liutong-usage-journal"


def journal_key(endpoint: str, table: str) -> str:
    """Subdirectory per storage endpoint and table: a journal is only ever replayed where it belongs
    (a local run against a fresh Azurite must not adopt records spilled for another one)."""
    return hashlib.sha256(f"{endpoint}|{table}".encode()).hexdigest()[:16]


def encode(record: UsageRecord) -> bytes:
    values: dict[str, Any] = dataclasses.asdict(record)
    values["at"] = record.at.isoformat()
    return json.dumps(values, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> UsageRecord:
    values = json.loads(line)
    if not isinstance(values, dict) or not _REQUIRED <= set(values) <= FIELDS:
        raise ValueError("not a usage record")
    values["at"] = datetime.fromisoformat(values["at"])
    return UsageRecord(**values)


def read_chunk(fd: int, path: Path, offset: int, end: int) -> tuple[list[UsageRecord], int]:
    """The whole lines from offset, at most ~1 MiB of them, and the offset after them."""
    data = os.pread(fd, min(_CHUNK, end - offset), offset)
    if offset + len(data) < end and b"\n" in data:
        data = data[: data.rindex(b"\n") + 1]
    return decode_all(data, path), offset + len(data)


def decode_all(data: bytes, path: Path) -> list[UsageRecord]:
    records = []
    for number, line in enumerate(data.splitlines(), start=1):
        try:
            records.append(decode(line))
        except (ValueError, TypeError, KeyError):
            # A line torn by a crash mid-append; everything fsync'd before it is intact.
            log.error("Skipping unreadable usage journal line %d of %s.", number, path)
    return records


class UsageJournal:
    """The journal file this writer owns."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def create(cls, directory: Path, shard: str) -> UsageJournal:
        """Raises FileExistsError if the shard's file exists: pick another shard."""
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = directory / f"{_PREFIX}{shard}{_SUFFIX}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return cls(path, fd)

    def append(self, records: list[UsageRecord]) -> None:
        os.write(self._fd, b"".join(encode(record) for record in records))
        os.fsync(self._fd)

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def read_chunk(self, offset: int, end: int) -> tuple[list[UsageRecord], int]:
        return read_chunk(self._fd, self.path, offset, end)

    def discard(self, size: int) -> bool:
        """Empty the file if nothing was appended since it had `size` bytes.

        If something was, keep it all: replaying the committed part again is harmless (upserts),
        while cutting a prefix out of a file in place cannot be made crash-safe.
        """
        if os.fstat(self._fd).st_size != size:
            return False
        os.ftruncate(self._fd, 0)
        os.fsync(self._fd)
        return True

    def close(self) -> None:
        """Release the file; remove it when empty (a non-empty one is left for the next writer)."""
        if os.fstat(self._fd).st_size == 0:
            self.path.unlink(missing_ok=True)
        os.close(self._fd)


@dataclasses.dataclass
class Orphan:
    """A dead writer's journal, locked by us while we replay it."""

    path: Path
    shard: str
    fd: int

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def read_chunk(self, offset: int, end: int) -> tuple[list[UsageRecord], int]:
        return read_chunk(self.fd, self.path, offset, end)

    def close(self, *, remove: bool) -> None:
        if remove:
            self.path.unlink(missing_ok=True)
        os.close(self.fd)


def orphan_paths(directory: Path, own: Path | None) -> list[Path]:
    if not directory.is_dir():
        return []
    return [path for path in sorted(directory.glob(f"{_PREFIX}*{_SUFFIX}")) if path != own]


def try_adopt(path: Path) -> Orphan | None:
    """Lock a journal whose writer is gone; None if it is alive (locked) or already taken."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_nlink == 0:  # another writer adopted and removed it meanwhile
            raise BlockingIOError
    except BlockingIOError:
        os.close(fd)
        return None
    shard = path.name.removeprefix(_PREFIX).removesuffix(_SUFFIX)
    return Orphan(path, shard, fd)
