"""The hourly usage roll-up job: raw usage rows counted into `usagehours` (layout in metering.usage_hours).

Each run recounts, oldest first, every completed hour from the first one that is not final yet (the
watermark's `final_before`) and at least the last `recount_hours` hours; the first run starts
FIRST_RUN_HOURS back (older hours stay raw for the report: correct, only slower; `python -m metering
rollup-usage --since` rolls them up). Every count reads all
writer shards of the hour and replaces the hour's rows, so re-running gives the same rows and concurrent
runs write the same values. Usage may arrive late (journal replay after an outage, draining streams):
an hour is recounted by every run while it is among the last `recount_hours` hours; the run that counts
it for the last time makes it final. Records arriving later than that still reach raw usage (and metering
within its own window) but not the roll-up, so the report, which reads final hours from the roll-up,
does not show them.

The state advances after every hour, so a run cut short (a timeout, an outage) keeps what it finished.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from azure.data.tables.aio import TableClient

from core.clock import utc_now
from core.hours import HOUR, floor_hour, hours_between
from core.settings import Settings
from core.tables import Tables, rows_of
from metering.rollup import USAGE_HOURS_QUERY, usage_hours_params
from metering.submit_runtime import metering_tables
from metering.usage_hours import GROUP_COLUMNS, USAGE_COLUMNS, Counts, RollupState, UsageHours, add_usage, zero

FIRST_RUN_HOURS = 48

log = logging.getLogger("metering.usage_rollup")


@dataclass
class RollupReport:
    hours: list[datetime] = field(default_factory=list)
    groups: int = 0
    requests: int = 0
    state: RollupState | None = None

    def summary(self) -> dict[str, object]:
        return {
            "hours": len(self.hours),
            "first": _iso(self.hours[0] if self.hours else None),
            "last": _iso(self.hours[-1] if self.hours else None),
            "groups": self.groups,
            "requests": self.requests,
            "watermark": _iso(self.state.hour if self.state else None),
            "final_before": _iso(self.state.final_before if self.state else None),
        }


async def count_hour(usage: TableClient, hour: datetime) -> Counts:
    """The hour's usage per group, from every writer shard."""
    params = usage_hours_params(hour, hour)
    counts: Counts = defaultdict(zero)
    async for row in rows_of(usage, USAGE_HOURS_QUERY, params, [*USAGE_COLUMNS, *GROUP_COLUMNS]):
        add_usage(counts[tuple(row.get(column) for column in GROUP_COLUMNS)], row)
    return counts


def hours_due(
    state: RollupState | None, last: datetime, recount_hours: int, since: datetime | None = None
) -> list[datetime]:
    # From the first hour not final yet; on the first run, a bounded look-back.
    start = last - (FIRST_RUN_HOURS - 1) * HOUR if state is None else state.final_before
    if since is not None:
        start = min(start, floor_hour(since))
    return hours_between(min(start, last - (recount_hours - 1) * HOUR), last)


def last_hour(now: datetime, through: datetime | None) -> datetime:
    last_complete = floor_hour(now) - HOUR
    last = last_complete if through is None else floor_hour(through)
    if last > last_complete:
        raise ValueError(f"{last:%Y-%m-%dT%H} has not ended; the last completed hour is {last_complete:%Y-%m-%dT%H}")
    return last


async def rollup_usage(
    tables: Tables, *, now: datetime, recount_hours: int, through: datetime | None = None,
    since: datetime | None = None,
) -> RollupReport:
    """Roll up the completed hours due, up to `through` (default: the last completed hour); `since`
    reaches back further (a backfill of hours before the first run)."""
    if recount_hours < 1:
        raise ValueError("recount_hours must be at least 1")
    last = last_hour(now, through)
    store = UsageHours(tables)
    # This run counts hours up to here for the last time.
    final_through = last - (recount_hours - 1) * HOUR
    report = RollupReport(state=await store.state())
    for hour in hours_due(report.state, last, recount_hours, since):
        counts = await count_hour(tables.table("usage"), hour)
        await store.write_hour(hour, counts, now=now)
        done = RollupState(hour=hour, final_before=min(hour, final_through) + HOUR)
        # Re-read: a concurrent run may have gone further; the state never moves back.
        report.state = done.merged(report.state).merged(await store.state())
        await store.save_state(report.state, now=now)
        report.hours.append(hour)
        report.groups += len(counts)
        report.requests += sum(counters[0] for counters in counts.values())
    return report


async def run_usage_rollup(
    settings: Settings, *, hour: datetime | None = None, since: datetime | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> RollupReport:
    async with metering_tables(settings) as tables:
        report = await rollup_usage(
            tables, now=clock(), recount_hours=settings.usage_rollup_recount_hours, through=hour, since=since
        )
    log.info("usage roll-up: %s", report.summary())
    return report


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
