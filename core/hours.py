"""UTC hours: the unit usage is counted, aggregated, reported and billed in. Pure: no I/O, no clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

HOUR = timedelta(hours=1)


def floor_hour(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def ceil_hour(at: datetime) -> datetime:
    floor = floor_hour(at)
    return floor if floor == at else floor + HOUR


def month_start(at: datetime) -> datetime:
    return floor_hour(at).replace(day=1, hour=0)


def previous_month_start(at: datetime) -> datetime:
    return month_start(month_start(at) - HOUR)


def hour_key(hour: datetime) -> str:
    return f"{hour:%Y%m%d%H}"


def parse_hour_key(key: str) -> datetime:
    return datetime.strptime(key, "%Y%m%d%H").replace(tzinfo=UTC)


def hours_between(first: datetime, last: datetime) -> list[datetime]:
    """first..last, both included."""
    count = int((last - first) / HOUR) + 1
    return [first + i * HOUR for i in range(max(0, count))]
