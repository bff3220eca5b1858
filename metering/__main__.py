"""The hourly timer's jobs, by hand:

  python -m metering submit [--hour YYYY-MM-DDTHH] [--dry-run]        Marketplace metering
  python -m metering purge-usage [--dry-run]                          usage retention (one bounded run)
  python -m metering verify --since YYYY-MM-DDTHH [--until …]         recount raw usage, compare with its aggregates
  python -m metering backfill --since YYYY-MM-DDTHH [--until …]       aggregate usage written before aggregates

Settings come from the environment (`LIUTONG_*`) exactly as for the service.
Exit codes: 0 everything due was accepted (or nothing was due);
1 the Marketplace refused events for good, or usage cannot be billed (see the output); 2 bad arguments or
settings; 3 some events failed transiently and are retried on the next run; 4 storage unreachable.
`verify` exits 1 when the aggregates differ from the recount (each difference a JSON line, then a summary).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from core.errors import StorageUnavailable
from core.hours import HOUR
from core.settings import Settings
from metering.retention_job import run_usage_retention
from metering.submit import RunReport, submit_due
from metering.submit_runtime import metering_deps, metering_tables
from usage.backfill import BackfillReport, backfill_usage
from usage.verify import VerifyReport, verify_usage

T = TypeVar("T")

EXIT_USAGE = 2
EXIT_UNAVAILABLE = 4
EXIT_DIFFERENCES = 1
USAGE_COMMANDS = {
    "verify": "recount the raw usage of whole UTC hours and print where its aggregates differ",
    "backfill": "aggregate the raw usage of hours written before aggregates existed (idempotent)",
}


def _hour(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H").replace(tzinfo=UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DDTHH (UTC), got {text!r}") from None


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m metering", description="Marketplace metering.")
    commands = root.add_subparsers(dest="command", required=True)
    submit = commands.add_parser("submit", help="submit billable usage of completed hours to the Marketplace")
    submit.add_argument(
        "--hour", type=_hour, default=None,
        help="last hour to close, UTC (default: the last completed hour); open events are sent regardless",
    )
    submit.add_argument("--dry-run", action="store_true", help="print the events it would send; send and write nothing")
    purge = commands.add_parser("purge-usage", help="delete usage older than its retention (one bounded run)")
    purge.add_argument("--dry-run", action="store_true", help="print what it would seal and delete; write nothing")
    for name, text in USAGE_COMMANDS.items():
        hours = commands.add_parser(name, help=text)
        hours.add_argument("--since", type=_hour, required=True, help="first hour, UTC")
        hours.add_argument("--until", type=_hour, default=None, help="end hour, UTC, excluded (default: --since + 1h)")
    return root


async def run_submit(settings: Settings, *, hour: datetime | None, dry_run: bool) -> RunReport:
    async with metering_deps(settings, dry_run=dry_run) as deps:
        return await submit_due(deps, through=hour, dry_run=dry_run)


def _run(job: Callable[[Settings], Coroutine[Any, Any, T]]) -> T | int:
    """The job's result, or the exit code for bad arguments or settings (2) or unreachable storage (4)."""
    try:
        return asyncio.run(job(Settings()))
    except (ValidationError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except StorageUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE


def submit_command(*, hour: datetime | None, dry_run: bool) -> int:
    report = _run(lambda settings: run_submit(settings, hour=hour, dry_run=dry_run))
    if isinstance(report, int):
        return report
    if dry_run:
        for event in report.events:
            print(json.dumps(event.body()))
    print(json.dumps(report.summary()), file=sys.stderr if dry_run else sys.stdout)
    return report.exit_code


def purge_usage_command(*, dry_run: bool) -> int:
    """0 also when the run stopped at its delete budget (the next one resumes); 2 bad settings; 4 storage."""
    report = _run(lambda settings: run_usage_retention(settings, dry_run=dry_run))
    if isinstance(report, int):
        return report
    print(json.dumps(report.summary()))
    return 0


def usage_hours_command(command: str, since: datetime, until: datetime | None) -> int:
    """verify: 0 no differences, 1 differences; backfill: 0. Both: 2 bad arguments or settings; 4 storage."""
    end = until or since + HOUR
    if end <= since:
        print("error: --until must be later than --since", file=sys.stderr)
        return EXIT_USAGE
    report: VerifyReport | BackfillReport | int
    if command == "verify":
        report = _run(lambda settings: run_verify(settings, since, end))
    else:
        report = _run(lambda settings: run_backfill(settings, since, end))
    if isinstance(report, int):
        return report
    if isinstance(report, VerifyReport):
        for difference in report.differences:
            print(json.dumps(difference.view()))
    print(json.dumps(report.summary()))
    return EXIT_DIFFERENCES if isinstance(report, VerifyReport) and not report.ok else 0


async def run_verify(settings: Settings, first: datetime, end: datetime) -> VerifyReport:
    async with metering_tables(settings) as tables:
        return await verify_usage(tables, first, end)


async def run_backfill(settings: Settings, first: datetime, end: datetime) -> BackfillReport:
    console = Console(stderr=True)  # drawn on a terminal only: a pipe or a log gets the summary alone
    columns = (TextColumn("backfill: usage partitions"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("backfill", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        async with metering_tables(settings) as tables:
            return await backfill_usage(tables, first, end, progress=advance)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "purge-usage":
        return purge_usage_command(dry_run=args.dry_run)
    if args.command in USAGE_COMMANDS:
        return usage_hours_command(args.command, args.since, args.until)
    return submit_command(hour=args.hour, dry_run=args.dry_run)

if __name__ == "__main__":
    sys.exit(main())
