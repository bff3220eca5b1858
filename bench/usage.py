"""Benchmark: usage aggregates kept on write, at two sizes - does reading them cost the same at 10x the records?

For each size, on a fresh in-memory Azurite: the records (24 completed UTC hours before the current one, ~1,000
groups, skewed) go through the real UsageWriter (async, default flush interval) as fast as it takes them; then
the 7-day usage report (JSON and CSV, median of --repeats), the hourly Marketplace metering run (to the
Metering stand-in) and verify of one hour are timed. The first size is the baseline of the others.

    .venv/bin/python -m bench.usage [--sizes 100000,1000000] [--groups 1000] [--deployments 100]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.common import CACHE_DIR, say
from bench.usage_data import bench_catalog, build_population
from bench.usage_measure import SizeResult, measure_size
from bench.usage_table import print_results
from core.settings import Settings
from core.tables import Tables
from limits.plans import PlanCatalog
from localdev import azurite
from localdev.standin import start_in_thread

HOST = "127.0.0.1"


@contextmanager
def fresh_azurite() -> Iterator[tuple[str, int]]:
    """An in-memory Azurite of its own: (connection string, pid)."""
    port = azurite.free_port(HOST)
    process = azurite.start_azurite(HOST, port)
    try:
        yield azurite.connection_string(HOST, port), process.pid
    finally:
        azurite.stop(process)


def bench_settings(connection_string: str, journal_dir: Path) -> Settings:
    values = {"storage_connection_string": connection_string, "table_prefix": "bench",
              "usage_journal_dir": str(journal_dir)}
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


async def run_size(records: int, args: argparse.Namespace, catalog: PlanCatalog) -> SizeResult:
    """One size on its own Azurite and Metering stand-in, so the sizes share no table and no accepted event."""
    population = build_population(catalog, groups=args.groups, deployments=args.deployments, seed=args.seed)
    with (
        fresh_azurite() as (connection_string, pid), start_in_thread() as standin,
        tempfile.TemporaryDirectory(dir=CACHE_DIR) as journal,
    ):
        settings = bench_settings(connection_string, Path(journal))
        tables = Tables(settings)
        try:
            await tables.ensure_tables()
            return await measure_size(
                settings, tables, population, catalog, standin,
                records=records, storage_pid=pid, seed=args.seed, repeats=args.repeats,
            )
        finally:
            await tables.close()


async def run(args: argparse.Namespace) -> list[SizeResult]:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    catalog = bench_catalog(Settings(_env_file=None).plans_file)  # type: ignore[call-arg]
    results = []
    for records in args.sizes:
        say(f"usage bench: {records:,} records, {args.groups:,} groups, {args.deployments} deployments ...")
        started = time.perf_counter()
        results.append(await run_size(records, args, catalog))
        say(f"usage bench: {records:,} records done in {time.perf_counter() - started:.0f} s")
    return results


def sizes(text: str) -> list[int]:
    values = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    if not values or any(value <= 0 for value in values):
        raise argparse.ArgumentTypeError("sizes must be positive record counts, e.g. 100000,1000000")
    return values


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m bench.usage", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    root.add_argument("--sizes", type=sizes, default=[100_000, 1_000_000],
                      help="records per size; the first is the baseline")
    root.add_argument("--groups", type=int, default=1000, help="usage groups (team x deployment x plan x model x key)")
    root.add_argument("--deployments", type=int, default=100, help="Marketplace deployments billed by metering")
    root.add_argument("--repeats", type=int, default=3, help="report runs per format (the median is printed)")
    root.add_argument("--seed", type=int, default=1)
    return root


def main() -> None:
    args = parser().parse_args()
    started = time.perf_counter()
    results = asyncio.run(run(args))
    print_results(results, elapsed=time.perf_counter() - started)


if __name__ == "__main__":
    main()
