"""The usage benchmark's core, for one size on one Azurite: write the records through the real UsageWriter, then
time what reads the aggregates - the 7-day report (JSON and CSV), the hourly metering run, verify of one hour.

Every timed phase records its wall time and the CPU of this process and of Azurite (from /proc). The metering
runs go to the Marketplace Metering stand-in (localdev/standin, in a thread of this process) through the real
MarketplaceClient, with a clock set just after the hours they bill.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import httpx
from azure.core.credentials import AccessToken

from admin.csv_export import csv_chunks
from admin.usage_report import UsageQuery, read_usage, usage_cells, usage_view
from bench.load import process_cpu_seconds
from bench.usage_data import Population, hour_counts, records_of_hour, seed_deployments
from core.hours import HOUR, floor_hour
from core.settings import Settings
from core.tables import Tables
from limits.plans import PlanCatalog
from localdev.standin import RunningStandin
from localdev.standin.metering import METERING_AUDIENCE, metering_of
from metering.marketplace_client import MarketplaceClient, Outcome
from metering.submit import MeteringDeps, RunReport, submit_due
from provisioning.deployment_store import DeploymentStore
from usage.reader import read_aggregates
from usage.verify import verify_usage
from usage.writer import UsageWriter

HOURS = 24
REPORT_DAYS = 7
YIELD_EVERY = 500  # records fed between two turns of the event loop
BACKLOG = 5_000  # records fed but not yet committed before the feed waits for the writer
POLL_SECONDS = 0.05  # while waiting: seconds of work are queued, and a faster poll costs CPU counted as the writer's

T = TypeVar("T")


@dataclass(frozen=True)
class Phase:
    wall: float  # seconds
    cpu: float  # this process, CPU seconds
    storage: float  # Azurite, CPU seconds


@dataclass
class WriteResult:
    records: int
    phase: Phase
    generate_cpu: float  # CPU seconds spent making the records (not the writer's)
    transactions: int
    spilled: int
    replayed: int

    @property
    def per_second(self) -> float:
        return self.records / self.phase.wall

    @property
    def writer_ms_per_1k(self) -> float:
        return (self.phase.cpu - self.generate_cpu) / self.records * 1e6

    @property
    def storage_ms_per_1k(self) -> float:
        return self.phase.storage / self.records * 1e6


@dataclass
class ReadCounts:
    aggregates: int  # (hour, group) rows read_aggregates returned
    shard_hours: int
    hours: int
    groups: int
    behind: int
    requests: int  # the report's request total


@dataclass
class SizeResult:
    records: int
    groups: int
    write: WriteResult
    report_json: list[Phase]
    report_csv: list[Phase]
    counts: ReadCounts
    metering_first: tuple[Phase, RunReport]
    metering_hourly: tuple[Phase, RunReport]
    verify: Phase
    notes: list[str] = field(default_factory=list)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class StandinMeteringCredential:
    """A metering token minted by the stand-in, as the service's managed identity would get it."""

    def __init__(self, standin: RunningStandin) -> None:
        self._standin = standin

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        config = self._standin.state.config
        token = self._standin.state.mint_token(
            tid=config.publisher_tenant_id, oid=config.service_principal_id, aud=METERING_AUDIENCE
        )
        return AccessToken(token, int(time.time()) + 3600)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> StandinMeteringCredential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


async def measured(action: Callable[[], Awaitable[T]], storage_pid: int | None) -> tuple[T, Phase]:
    cpu, storage, start = process_cpu_seconds(os.getpid()), process_cpu_seconds(storage_pid), time.perf_counter()
    result = await action()
    wall = time.perf_counter() - start
    phase = Phase(wall, process_cpu_seconds(os.getpid()) - cpu, process_cpu_seconds(storage_pid) - storage)
    return result, phase


async def measure_size(
    settings: Settings, tables: Tables, population: Population, catalog: PlanCatalog, standin: RunningStandin, *,
    records: int, storage_pid: int | None, seed: int, repeats: int = 3, now: datetime | None = None,
) -> SizeResult:
    """Write `records` over the 24 hours before the current one, then time the reads (`repeats` reports each)."""
    current = floor_hour(now or datetime.now().astimezone())
    first_hour = current - HOURS * HOUR
    await seed_deployments(tables, metering_of(standin.state), population)
    write = await write_usage(settings, tables, population, first_hour, records, storage_pid, seed)
    query = UsageQuery(start=current + HOUR - timedelta(days=REPORT_DAYS), end=current + HOUR)
    report_json, report_csv = await time_reports(tables, query, storage_pid, repeats)
    counts = await read_counts(tables, query)
    first, hourly = await time_metering(tables, catalog, standin, current, storage_pid)
    notes: list[str] = []
    verify = await time_verify(tables, current - HOUR, current, storage_pid, notes)
    groups = len(population.groups)
    return SizeResult(records, groups, write, report_json, report_csv, counts, first, hourly, verify, notes)


async def write_usage(
    settings: Settings, tables: Tables, population: Population, first_hour: datetime, records: int,
    storage_pid: int | None, seed: int,
) -> WriteResult:
    """Feed the records, hour by hour in time order, as fast as the writer takes them; until flush returns."""
    rng = random.Random(seed)
    writer = UsageWriter(tables=tables, settings=settings)
    generate = 0.0

    async def feed() -> None:
        nonlocal generate
        fed = 0
        for index, count in enumerate(hour_counts(records, HOURS)):
            started = time.process_time()
            batch = records_of_hour(population, rng, first_hour + index * HOUR, count)
            generate += time.process_time() - started
            for record in batch:
                await writer.record(record)
                fed += 1
                if fed % YIELD_EVERY == 0:
                    await _keep_up(writer, fed)
            del batch
        await writer.flush()

    try:
        _, phase = await measured(feed, storage_pid)
    finally:
        await writer.close()
    stats = writer.stats
    return WriteResult(records, phase, generate, writer.transactions, stats.spilled, stats.replayed)


async def _keep_up(writer: UsageWriter, fed: int) -> None:
    """Yield to the loop; wait while the writer is more than BACKLOG records behind the feed."""
    await asyncio.sleep(0)
    # The writer exposes counters, not an event to wait on: poll them.
    while fed - writer.stats.committed - writer.stats.spilled > BACKLOG:  # noqa: ASYNC110
        await asyncio.sleep(POLL_SECONDS)


async def time_reports(
    tables: Tables, query: UsageQuery, storage_pid: int | None, repeats: int
) -> tuple[list[Phase], list[Phase]]:
    """The report as admin_usage_report answers it: read_usage, then usage_view + JSON or the CSV chunks."""

    async def as_json() -> int:
        view = usage_view(await read_usage(tables, query))
        return len(json.dumps(view, ensure_ascii=False, allow_nan=False, separators=(",", ":")))

    async def as_csv() -> int:
        report = await read_usage(tables, query)
        return sum([len(chunk) async for chunk in csv_chunks(report.header, map(usage_cells, report.rows))])

    json_runs, csv_runs = [], []
    for _ in range(repeats):  # interleaved, so a noisy moment spreads over both
        json_runs.append((await measured(as_json, storage_pid))[1])
        csv_runs.append((await measured(as_csv, storage_pid))[1])
    return json_runs, csv_runs


async def read_counts(tables: Tables, query: UsageQuery) -> ReadCounts:
    """What one report read: the aggregate rows behind it, and the request total it shows."""
    aggregates, stats = await read_aggregates(tables, query.start, query.end, repair=False)
    report = await read_usage(tables, query)
    return ReadCounts(
        aggregates=len(aggregates), shard_hours=stats.shard_hours, hours=len({a.hour for a in aggregates}),
        groups=len({a.group for a in aggregates}), behind=stats.behind, requests=report.totals()["requests"],
    )


async def time_metering(
    tables: Tables, catalog: PlanCatalog, standin: RunningStandin, current: datetime, storage_pid: int | None
) -> tuple[tuple[Phase, RunReport], tuple[Phase, RunReport]]:
    """The first run (catches up on 23 hours), then the timed hourly run that bills the last hour."""
    clock = Clock(current - HOUR + timedelta(minutes=5))
    metering_of(standin.state).clock = clock
    async with httpx.AsyncClient(timeout=30) as http:
        credential = StandinMeteringCredential(standin)
        client = MarketplaceClient(http=http, credential=credential, endpoint=standin.base_url)
        deployments = DeploymentStore(tables)
        deps = MeteringDeps(tables=tables, deployments=deployments, plans=catalog, client=client, clock=clock)
        first = await measured(lambda: submit_due(deps), storage_pid)
        clock.now = current + timedelta(minutes=5)
        hourly = await measured(lambda: submit_due(deps), storage_pid)
    return (first[1], first[0]), (hourly[1], hourly[0])


def accepted(report: RunReport) -> int:
    return report.count(Outcome.ACCEPTED)


async def time_verify(
    tables: Tables, first: datetime, end: datetime, storage_pid: int | None, notes: list[str]
) -> Phase:
    """usage.verify over the whole hours [first, end): the one reader that recounts raw rows."""
    report, phase = await measured(lambda: verify_usage(tables, first, end), storage_pid)
    notes.append(f"verify {first:%Y-%m-%dT%H}Z..{end:%H}Z: {report.summary()}")
    return phase


def median_wall(phases: list[Phase]) -> float:
    return statistics.median(p.wall for p in phases)
