"""The wall clock every component takes as its default `now`/`clock` (tests pass their own)."""

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)
