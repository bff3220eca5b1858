"""The hourly timer's jobs, by hand:

  python -m metering submit [--hour YYYY-MM-DDTHH] [--dry-run]        Marketplace metering

Settings come from the environment (`LIUTONG_*`) exactly as for the service.
Exit codes: 0 everything due was accepted (or nothing was due);
1 the Marketplace refused events for good, or usage cannot be billed (see the output); 2 bad arguments or
settings; 3 some events failed transiently and are retried on the next run; 4 storage unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import ValidationError

from core.errors import StorageUnavailable
from core.settings import Settings
from metering.submit import RunReport, submit_due
from metering.submit_runtime import metering_deps

EXIT_USAGE = 2
EXIT_UNAVAILABLE = 4


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
    return root


async def run_submit(settings: Settings, *, hour: datetime | None, dry_run: bool) -> RunReport:
    async with metering_deps(settings, dry_run=dry_run) as deps:
        return await submit_due(deps, through=hour, dry_run=dry_run)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    try:
        report = asyncio.run(run_submit(Settings(), hour=args.hour, dry_run=args.dry_run))
    except (ValidationError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except StorageUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    if args.dry_run:
        for event in report.events:
            print(json.dumps(event.body()))
    print(json.dumps(report.summary()), file=sys.stderr if args.dry_run else sys.stdout)
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
