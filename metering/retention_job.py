"""The usage retention job (usage.purge) of the hourly timer and of `python -m metering purge-usage`.

It runs after metering and never deletes raw usage of an hour metering may still recount: metering recounts
its last RECOUNT_HOURS hours up to its watermark, so the hours before watermark - (RECOUNT_HOURS - 1) are
finished. Until metering has run once (no watermark) no raw usage is deleted.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from core.clock import utc_now
from core.hours import HOUR
from core.identity import service_credential
from core.settings import Settings
from core.tables import Tables
from metering.rollup import HourlyTotals
from metering.submit import RECOUNT_HOURS
from metering.submit_runtime import ensure_metering_tables
from usage.purge import PurgeReport, purge_usage
from usage.retention import RetentionPolicy

log = logging.getLogger("metering.retention")


async def run_usage_retention(
    settings: Settings, *, clock: Callable[[], datetime] = utc_now, dry_run: bool = False
) -> PurgeReport:
    """One bounded purge run; a dry run writes nothing and reports what a run would seal and delete."""
    async with _tables(settings, create=not dry_run) as tables:
        finished_before = await metering_finished_before(tables)
        if finished_before is None:
            log.warning("metering has not run yet: raw usage is kept until it has")
        report = await purge_usage(
            tables, policy=RetentionPolicy.from_settings(settings), now=clock(), finished_before=finished_before,
            dry_run=dry_run,
        )
    if report.stopped_early:  # usage grows faster than a run deletes, or a backlog is being worked off
        log.warning("usage retention stopped at its delete budget; the next run resumes: %s", report.summary())
    else:
        log.info("usage retention: %s", report.summary())
    return report


async def metering_finished_before(tables: Tables) -> datetime | None:
    """The first hour metering may still recount (every hour before it is finished); None before its first run."""
    watermark = await HourlyTotals(tables).watermark()
    return None if watermark is None else watermark - (RECOUNT_HOURS - 1) * HOUR


@contextlib.asynccontextmanager
async def _tables(settings: Settings, *, create: bool) -> AsyncIterator[Tables]:
    """The tables (created if missing, unless a dry run, which creates nothing); closed on exit."""
    async with contextlib.AsyncExitStack() as stack:
        credential = service_credential(settings)
        stack.push_async_callback(credential.close)
        tables = Tables(settings, credential=credential)
        stack.push_async_callback(tables.close)
        if create:
            await ensure_metering_tables(tables, settings)
        yield tables
