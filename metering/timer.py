"""The hourly timer (`0 5 * * * *`): Marketplace metering, then usage retention, each job built from settings.

The jobs are independent: a failure of one is logged and the others still run; the invocation then
fails with the first error so the host records it.
"""

import logging
from collections.abc import Awaitable, Callable

import azure.functions as func

from core.errors import StorageUnavailable
from core.settings import Settings, get_settings
from metering.retention_job import run_usage_retention
from metering.submit import RunReport, submit_due
from metering.submit_runtime import metering_deps

SCHEDULE = "0 5 * * * *"

log = logging.getLogger("metering.timer")


async def submit_metering(timer: func.TimerRequest) -> None:
    if timer.past_due:
        # Nothing is lost: the jobs catch up on the hours they have not finished.
        log.warning("metering timer is past due; this run catches up")
    settings = get_settings()
    jobs: dict[str, Callable[[], Awaitable[object]]] = {
        "metering": lambda: run_metering(settings),
        "usage retention": lambda: run_usage_retention(settings),  # after metering: it moves the watermark
    }
    failures = [error for name, job in jobs.items() if (error := await _attempt(name, job)) is not None]
    if failures:
        raise failures[0]


async def _attempt(name: str, job: Callable[[], Awaitable[object]]) -> Exception | None:
    try:
        await job()
    except StorageUnavailable as error:
        log.error("%s failed: %s; the next run catches up", name, error)
        return error
    except Exception as error:
        log.exception("%s failed (%s)", name, type(error).__name__)
        return error
    return None


async def run_metering(settings: Settings) -> RunReport:
    async with metering_deps(settings) as deps:
        report = await submit_due(deps)
    level = logging.ERROR if report.exit_code == 1 else logging.INFO
    log.log(level, "metering run: %s", report.summary())
    return report
