"""The hourly metering timer (`0 5 * * * *`): builds its collaborators from settings and runs `submit_due`."""

import logging

import azure.functions as func

from core.settings import Settings, get_settings
from metering.submit import RunReport, submit_due
from metering.submit_runtime import metering_deps

SCHEDULE = "0 5 * * * *"

log = logging.getLogger("metering.timer")


async def submit_metering(timer: func.TimerRequest) -> None:
    if timer.past_due:
        # Nothing is lost: every unsent hour still inside the 24-hour window is sent by this run.
        log.warning("metering timer is past due; this run catches up")
    await run_metering(get_settings())


async def run_metering(settings: Settings) -> RunReport:
    async with metering_deps(settings) as deps:
        report = await submit_due(deps)
    level = logging.ERROR if report.exit_code == 1 else logging.INFO
    log.log(level, "metering run: %s", report.summary())
    return report
