"""Benchmark: one key's RPM shared by two service processes on one Azurite, against per-instance buckets.

Starts the mock upstream (own process, 5 ms), Azurite and the Azure stand-in, then per leg two Liutong service
processes (`localdev.serve`, the same settings) and a fresh key on a plan limited to --rpm (600). wrk drives the key
on both processes at once (`-c` connections each, the proxy benchmark's chat completion): first --warmup seconds that
spend the bucket's initial burst, then the measured --duration (60 s). Leg "shared" has LIUTONG_RATE_SHARED_BUDGET on
(limits.leases), leg "local" off: the baseline, what each process admits on its own buckets. --rounds N interleaves
the legs N times (drift on a shared machine hits both alike).

Prints, per leg and process: requests/s, admitted/s (2xx), CPU ms per request of the process (from /proc), and
the totals: admitted in the measured window against one instance's limit for that window (rpm x window / 60), plus
the shared bucket's level when it began (read from Azurite) plus the bound N x S; and the whole run from a full
bucket against rpm + rpm x run / 60 + N x S. Then the CPU per request of the shared leg over the baseline's.

    .venv/bin/python -m bench.shared_limits [--duration 60] [--rpm 600] [--rounds 1] [--connections 8] [--legs ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.common import ALIAS, HOST, LegUnavailable, Target, say
from bench.legs import start_mock
from bench.liutong import liutong_settings, seed_team_key, service_environ
from bench.load import WrkResult, ensure_wrk, process_cpu_seconds, run_wrk
from bench.processes import Processes, signals_as_interrupts, wait_http
from core.settings import Settings
from core.tables import Tables
from limits.budget import SharedBuckets
from limits.limiter import RATE_TABLE
from localdev.azurite import free_port
from localdev.stack import LocalStack, Ports

PLAN_ID = "bench-limited"
INSTANCES = 2
LEGS = {"shared": True, "local": False}


@dataclass
class Leg:
    name: str
    shared: bool
    lease_slice: int
    level_at_start: float  # the shared bucket when the measured window began (shared leg)
    window: float  # seconds from that reading to the end of the measured wrk
    run: float  # seconds from the first warm-up request to the end
    warmup: list[WrkResult]
    measured: list[WrkResult]
    storage_cpu_ms: float  # Azurite's CPU per request in the measured window

    def admitted(self, results: list[WrkResult]) -> int:
        return sum(r.requests - r.non2xx for r in results)


def write_plan(work: Path, rpm: int) -> Path:
    plans = {"plans": [{"plan_id": PLAN_ID, "models": [ALIAS], "rpm": rpm, "mode": "quota"}]}
    path = work / "plans-limited.json"
    path.write_text(json.dumps(plans, indent=2))
    return path


def start_services(
    processes: Processes, stack: LocalStack, settings: Settings, leg: str, key: str
) -> tuple[list[Target], list[subprocess.Popen[bytes]]]:
    targets, started = [], []
    for number in range(INSTANCES):
        port = free_port()
        command = [sys.executable, "-m", "localdev.serve", "--host", HOST, "--port", str(port)]
        process = processes.start(f"{leg}-{number}", command, service_environ(stack, settings))
        started.append(process)
        target = Target(f"{leg} process {number + 1}", f"http://{HOST}:{port}", key=key, pid=process.pid)
        try:
            wait_http(target.base_url + "/api/health", process, timeout=60)
        except LegUnavailable as exc:
            raise SystemExit(f"{target.name} did not start: {exc}\n{processes.log_tail(f'{leg}-{number}')}") from exc
        targets.append(target)
    return targets, started


def drive(wrk: str, targets: list[Target], seconds: float, args: argparse.Namespace) -> list[WrkResult]:
    """wrk on every target at once; each result carries its process's CPU per request."""
    load = argparse.Namespace(threads=1, connections=args.connections)
    with ThreadPoolExecutor(len(targets)) as pool:
        runs = [pool.submit(run_wrk, wrk, t, stream=False, seconds=seconds, args=load) for t in targets]
        return [run.result() for run in runs]


async def shared_level(settings: Settings, key_id: str, rpm: int) -> float:
    tables = Tables(settings)
    try:
        levels = await SharedBuckets(tables.table(RATE_TABLE)).level(key_id, {"requests": rpm}, time.time())
        return levels["requests"]
    finally:
        await tables.close()


def run_leg(wrk: str, processes: Processes, stack: LocalStack, base: Settings, name: str,
            args: argparse.Namespace) -> Leg:
    settings = base.model_copy(update={"rate_shared_budget": LEGS[name]})
    key, key_id = asyncio.run(seed_team_key(settings, f"bench-{name}", PLAN_ID))
    targets, started_processes = start_services(processes, stack, settings, name, key)
    azurite = stack.azurite_process.pid if stack.azurite_process is not None else None
    try:
        say(f"{name}: warm-up {args.warmup:.0f} s, then {args.duration:.0f} s measured")
        started = time.monotonic()
        warmup = drive(wrk, targets, args.warmup, args)
        at_start = time.monotonic()
        level = asyncio.run(shared_level(settings, key_id, args.rpm))
        storage = process_cpu_seconds(azurite)
        measured = drive(wrk, targets, args.duration, args)
        storage = process_cpu_seconds(azurite) - storage
        ended = time.monotonic()
    finally:
        processes.stop(*started_processes)
    lease_slice = max(1, math.ceil(args.rpm * settings.rate_lease_fraction))
    requests = sum(r.requests for r in measured) or 1
    return Leg(name, LEGS[name], lease_slice, level, ended - at_start, ended - started, warmup, measured,
               storage * 1000 / requests)


def report(rounds: list[list[Leg]], args: argparse.Namespace) -> None:
    for number, legs in enumerate(rounds, start=1):
        for leg in legs:
            report_leg(leg, args.rpm, f"round {number}/{len(rounds)}")
    ratios = [ratio for legs in rounds if (ratio := _ratio(legs)) is not None]
    if ratios:
        print(f"\nCPU per request, shared / per-instance, per round: {', '.join(f'{r:.2f}x' for r in ratios)}; "
              f"median {statistics.median(ratios):.2f}x")


def report_leg(leg: Leg, rpm: int, title: str) -> None:
    bound = INSTANCES * leg.lease_slice
    print(f"\n## {title}, {leg.name}: {'shared budget' if leg.shared else 'per-instance buckets only'}")
    print("| process | req/s | admitted | admitted/s | refused | CPU ms/request |")
    print("|---|---|---|---|---|---|")
    for number, result in enumerate(leg.measured, start=1):
        admitted = result.requests - result.non2xx
        print(f"| {number} | {result.rps:.0f} | {admitted} | {admitted / result.seconds:.2f} | "
              f"{result.non2xx} | {_ms(result.cpu_ms)} |")
    one = rpm * leg.window / 60
    left = max(0.0, leg.level_at_start) if leg.shared else 0.0
    limit = one + left + bound
    total = leg.admitted(leg.measured)
    print(f"measured window {leg.window:.1f} s: admitted {total}; one instance's limit {one:.1f} "
          f"(+ {left:.1f} left in the shared bucket) + bound N x S = {INSTANCES} x {leg.lease_slice} = {bound} "
          f"-> at most {limit:.1f}: {'within' if total <= limit else 'OVER'}")
    whole = leg.admitted(leg.warmup) + total
    burst = rpm + rpm * leg.run / 60 + bound
    print(f"whole run {leg.run:.1f} s from a full bucket: admitted {whole}; at most {rpm} + "
          f"{rpm * leg.run / 60:.1f} + {bound} = {burst:.1f}: {'within' if whole <= burst else 'OVER'}")
    print(f"Azurite CPU per request: {leg.storage_cpu_ms:.3f} ms")


def _ratio(legs: list[Leg]) -> float | None:
    by_name = {leg.name: leg for leg in legs}
    if not {"shared", "local"} <= set(by_name):
        return None
    shared, local = (_cpu_per_request(by_name[n].measured) for n in ("shared", "local"))
    return shared / local if shared is not None and local else None


def _cpu_per_request(results: list[WrkResult]) -> float | None:
    pairs = [(r.cpu_ms * r.requests, r.requests) for r in results if r.cpu_ms is not None]
    requests = sum(n for _, n in pairs)
    return sum(c for c, _ in pairs) / requests if requests else None


def _ms(value: float | None) -> str:
    return "?" if value is None else f"{value:.3f}"


def run(args: argparse.Namespace) -> None:
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="liutong-bench-") as tmp, signals_as_interrupts():
        work = Path(tmp)
        processes = Processes(work)
        stack = LocalStack(ports=Ports.free())
        try:
            mock = start_mock(processes, args.latency_ms)
            liutong_settings(stack, mock.base_url, work)
            stack.setting_overrides["plans_file"] = str(write_plan(work, args.rpm))
            base = stack.settings()
            rounds = [[run_leg(wrk, processes, stack, base, name, args) for name in args.legs]
                      for _ in range(args.rounds)]  # interleaved: drift on a shared machine hits both legs alike
            report(rounds, args)
        finally:
            processes.stop_all()
            stack.stop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60, help="measured seconds (the bound scales with it)")
    parser.add_argument("--warmup", type=float, default=5, help="seconds that spend the initial burst first")
    parser.add_argument("--rpm", type=int, default=600, help="the key's plan limit")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of all legs, interleaved")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections on each process")
    parser.add_argument("--latency-ms", type=float, default=5, help="the mock upstream's latency")
    parser.add_argument("--legs", default="shared,local", help="comma-separated: shared, local (the baseline)")
    args = parser.parse_args(argv)
    args.legs = [leg.strip() for leg in args.legs.split(",") if leg.strip()]
    if set(args.legs) - set(LEGS):
        parser.error(f"unknown legs {sorted(set(args.legs) - set(LEGS))}; known: {', '.join(LEGS)}")
    return args


def main() -> None:
    try:
        run(parse_args())
    except KeyboardInterrupt:
        say("interrupted: stopped every process this run started")
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
