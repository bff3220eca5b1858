"""Benchmark: the customers' own usage view (GET /v1/usage) - what a call costs, and how that grows when every
other customer's groups grow tenfold.

For each size (default 1,000 then 10,000 groups; teams of 3 models x 2 keys) on a fresh in-memory Azurite, with
the month so far seeded (--days, every group in every hour: bench/customer_usage_seed.py) and the real services
answering through the real route table (httpx's ASGI transport, in this process):
- cold: an instance's first call, which reads the month so far once for every owner (usage.month_to_date);
- live / settling refresh: the call on which the live hours' (then also the settling hours') TTL fell due;
- warm: --concurrency callers for --seconds, in --rounds interleaved with GET /v1/models (the baseline: the same
  authentication and a small JSON answer), req/s and CPU ms per request of this process (client and server) and of
  Azurite; the live refreshes that fall due meanwhile are part of it;
- naive: what each call would cost without the cache - the owner's month read as the admin report reads it.

    .venv/bin/python -m bench.customer_usage [--groups 1000,10000] [--days 7] [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import httpx

import services
from admin.usage_report import UsageQuery, read_usage
from bench import customer_usage_seed as seed
from bench.common import CACHE_DIR, say
from bench.load import process_cpu_seconds
from bench.usage import fresh_azurite
from core.hours import HOUR, floor_hour
from localdev.server import build_app
from usage.month_to_date import LIVE_TTL_SECONDS, SETTLE_TTL_SECONDS

T = TypeVar("T")


@dataclass(frozen=True)
class Cost:
    wall: float  # seconds
    cpu: float  # this process, CPU seconds
    storage: float  # Azurite, CPU seconds
    requests: int = 1
    held: float = 0.0  # the longest the event loop went without a turn, seconds (proxied calls would wait)

    @property
    def rps(self) -> float:
        return self.requests / self.wall

    def cpu_ms(self) -> float:
        return self.cpu / self.requests * 1000

    def storage_ms(self) -> float:
        return self.storage / self.requests * 1000


@dataclass
class SizeResult:
    groups: int
    owners: int
    hours: int
    cold: Cost
    live: Cost
    settling: Cost
    models: Cost
    usage: Cost
    naive: Cost


async def measured(action: Callable[[], Awaitable[T]], storage_pid: int | None) -> tuple[T, Cost]:
    held = [0.0]

    async def ticker() -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            held[0] = max(held[0], time.perf_counter() - before - 0.001)

    ticking = asyncio.create_task(ticker())
    cpu, storage, start = time.process_time(), process_cpu_seconds(storage_pid), time.perf_counter()
    try:
        result = await action()
    finally:
        ticking.cancel()
    return result, Cost(time.perf_counter() - start, time.process_time() - cpu,
                        process_cpu_seconds(storage_pid) - storage, held=held[0])


async def load(client: httpx.AsyncClient, path: str, key: str, args: argparse.Namespace, pid: int | None) -> Cost:
    """--concurrency callers for --seconds; every answer must be a 200."""
    headers = {"authorization": f"Bearer {key}"}
    deadline = time.perf_counter() + args.seconds
    done = [0]

    async def caller() -> None:
        while time.perf_counter() < deadline:
            response = await client.get(path, headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")
            done[0] += 1

    async def run() -> None:
        await asyncio.gather(*(caller() for _ in range(args.concurrency)))

    _, cost = await measured(run, pid)
    return Cost(cost.wall, cost.cpu, cost.storage, done[0], cost.held)


def median_cost(costs: list[Cost]) -> Cost:
    return sorted(costs, key=lambda c: c.cpu_ms())[len(costs) // 2]


async def run_size(groups: int, args: argparse.Namespace) -> SizeResult:
    owners = max(1, groups // (len(seed.MODELS) * seed.KEYS))
    now = seed.now_after(args.days)
    with fresh_azurite() as (connection_string, pid), seed.work_dir(CACHE_DIR) as work:
        built = await services.Services.create(seed.bench_settings(connection_string, Path(work)))
        previous = services._current
        services.install(built)
        try:
            return await measure(built, owners, now, args, pid)
        finally:
            services.install(previous)
            await built.close()


async def measure(
    built: services.Services, owners: int, now: datetime, args: argparse.Namespace, pid: int | None,
) -> SizeResult:
    say(f"customer usage bench: seeding {owners * len(seed.MODELS) * seed.KEYS:,} groups ({owners:,} owners) ...")
    hours = await seed.seed_month(built, owners, now)
    key = await seed.seed_caller(built)
    clock = seed.Skew()
    month = seed.install_view(built, now, clock)
    owner = f"team-{seed.team_name(0)}"
    _, cold = await measured(lambda: month.owner(owner), pid)
    clock.ahead += LIVE_TTL_SECONDS
    _, live = await measured(lambda: month.owner(owner), pid)
    clock.ahead += SETTLE_TTL_SECONDS
    _, settling = await measured(lambda: month.owner(owner), pid)
    team = seed.team_name(0)
    query = UsageQuery(start=seed.MONTH, end=floor_hour(now) + HOUR, group_by=("model",), filters={"team": team})
    _, naive = await measured(lambda: read_usage(built.tables, query), pid)
    transport = httpx.ASGITransport(app=build_app(built.settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for path in ("/v1/models", "/v1/usage"):  # warm the principal cache and the route
            assert (await client.get(path, headers={"authorization": f"Bearer {key}"})).status_code == 200
        models: list[Cost] = []
        usage: list[Cost] = []
        for round_ in range(args.rounds):
            say(f"customer usage bench: round {round_ + 1} of {args.rounds}")
            models.append(await load(client, "/v1/models", key, args, pid))
            usage.append(await load(client, "/v1/usage", key, args, pid))
    return SizeResult(owners * len(seed.MODELS) * seed.KEYS, owners, hours, cold, live, settling, median_cost(models),
                      median_cost(usage), naive)


def print_results(results: list[SizeResult], args: argparse.Namespace) -> None:
    print(f"\nGET /v1/usage, {args.days} days of the month seeded, {args.concurrency} callers, "
          f"median of {args.rounds} rounds of {args.seconds:g} s (CPU: this process, client and server)\n")
    print("| groups (owners) | cold: month read | live refresh | live + settling | naive call (admin read) |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r.groups:,} ({r.owners:,}) | {_phase(r.cold)} | {_phase(r.live)} | {_phase(r.settling)} | "
              f"{_phase(r.naive)} |")
    print("\n| groups | /v1/models req/s | CPU ms/req | /v1/usage req/s | CPU ms/req | Azurite ms/req | "
          "usage/models CPU | naive/usage CPU |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r.groups:,} | {r.models.rps:.0f} | {r.models.cpu_ms():.2f} | {r.usage.rps:.0f} | "
              f"{r.usage.cpu_ms():.2f} | {r.usage.storage_ms():.2f} | {r.usage.cpu_ms() / r.models.cpu_ms():.2f}x | "
              f"{r.naive.cpu * 1000 / r.usage.cpu_ms():.0f}x |")
    base = results[0]
    for r in results[1:]:
        grown = r.groups / base.groups
        print(f"\n{grown:g}x the groups: cold {_x(r.cold.wall, base.cold.wall)}, live refresh "
              f"{_x(r.live.wall, base.live.wall)}, naive call {_x(r.naive.wall, base.naive.wall)}; a warm call's "
              f"CPU {_x(r.usage.cpu_ms(), base.usage.cpu_ms())} (baseline /v1/models "
              f"{_x(r.models.cpu_ms(), base.models.cpu_ms())}), Azurite per call "
              f"{_x(r.usage.storage_ms(), base.usage.storage_ms())}")


def _phase(cost: Cost) -> str:
    return (f"{cost.wall * 1000:,.0f} ms (CPU {cost.cpu * 1000:,.0f} + Azurite {cost.storage * 1000:,.0f}; "
            f"loop held {cost.held * 1000:,.0f})")


def _x(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base else "n/a"


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m bench.customer_usage", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    root.add_argument("--groups", type=lambda text: [int(v) for v in text.split(",")], default=[1_000, 10_000],
                      help="usage groups of all owners, per size; the first is the baseline")
    root.add_argument("--days", type=int, default=7, help="whole days of the month before the current hour")
    root.add_argument("--seconds", type=float, default=5.0, help="seconds per load run")
    root.add_argument("--rounds", type=int, default=3, help="interleaved rounds (the median is printed)")
    root.add_argument("--concurrency", type=int, default=8)
    return root


async def run(args: argparse.Namespace) -> list[SizeResult]:
    return [await run_size(groups, args) for groups in args.groups]


def main() -> None:
    args = parser().parse_args()
    print_results(asyncio.run(run(args)), args)


if __name__ == "__main__":
    main()
