"""Benchmark: Liutong's proxy against the mock upstream called directly, the floor, and the LiteLLM proxy.

One run, one machine: the mock upstream (5 ms latency, its own process) is the limit; the floor (a
minimal Starlette + aiohttp pass-through, bench/passthrough.py, its own process) is the least any Python
ASGI proxy costs here; Liutong's local server (its own process, a real key in Azurite, plan limits and
usage recording on) and LiteLLM's proxy (its own venv under .local/bench/, no database) forward to the
same mock. Load comes from wrk (installed with apt-get when missing), the same Lua script for every
target; time to first token from a small aiohttp client. Every figure is printed beside the direct
baseline and the floor measured in the same run, and so is the CPU time each target's own processes
spent per request (from /proc), which a busy machine disturbs least.

    .venv/bin/python -m bench.proxy [--duration 10] [--legs liutong,litellm,floor] [--no-litellm] [--profile]

Layout: bench/processes.py (child processes), bench/legs.py and bench/liutong.py (starting targets),
bench/load.py (wrk, CPU, time to first token), bench/report.py (printing), bench/pyspy.py (--profile).

A leg that cannot start (LiteLLM not installable, Liutong's proxy route missing) is reported and skipped;
the others still run. Every process the script starts is stopped on exit, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import CACHE_DIR, DIRECT, FLOOR, LIUTONG, RESPONSES, LegUnavailable, Target, say
from bench.legs import start_floor, start_litellm, start_mock
from bench.liutong import count_usage_records, start_liutong
from bench.load import WrkResult, ensure_wrk, measure_ttft, run_wrk
from bench.pinning import pin_group, pin_process, split_cores, where
from bench.processes import Processes, signals_as_interrupts
from bench.pyspy import profile_liutong
from bench.report import Results, report
from localdev.stack import LocalStack, Ports

LEGS = ("floor", "liutong", "litellm")  # also the order they start and are measured in


def start_targets(
    processes: Processes, stack: LocalStack, work: Path, args: argparse.Namespace, results: Results
) -> list[Target]:
    mock = start_mock(processes, args.latency_ms)
    say(f"mock upstream: {mock.base_url}")
    starters: dict[str, tuple[str, Callable[[], Target]]] = {
        "floor": (FLOOR, lambda: start_floor(processes, mock.base_url, args.liutong_pythonpath)),
        "liutong": (LIUTONG, lambda: start_liutong(processes, stack, mock.base_url, work, args.liutong_pythonpath)),
        "litellm": ("LiteLLM", lambda: start_litellm(processes, mock.base_url, work, args)),
    }
    targets = [mock]
    for leg in (leg for leg in LEGS if leg in args.legs):
        label, start = starters[leg]
        try:
            targets.append(start())
            say(f"{targets[-1].name}: {targets[-1].base_url}")
        except LegUnavailable as exc:
            results.skipped[label] = str(exc)
            say(f"{label}: not measured: {exc}")
    return targets


def measure_wrk(wrk: str, targets: list[Target], args: argparse.Namespace, results: Results) -> None:
    for stream, table in ((False, results.plain), (True, results.stream)):
        rounds: dict[str, list[WrkResult]] = {t.name: [] for t in targets}
        for number in range(args.rounds):  # interleaved, so drift on a shared machine hits all alike
            for target in targets:
                mode = "streaming" if stream else "non-streaming"
                say(f"wrk {mode} {number + 1}/{args.rounds}: {target.name}")
                if args.warmup:
                    run_wrk(wrk, target, stream=stream, seconds=args.warmup, args=args)
                rounds[target.name].append(run_wrk(wrk, target, stream=stream, seconds=args.duration, args=args))
        for name, runs in rounds.items():
            table[name] = sorted(runs, key=lambda r: r.rps)[len(runs) // 2]  # the median round


def measure_ttfts(targets: list[Target], args: argparse.Namespace, results: Results) -> None:
    for target in targets:
        say(f"time to first token: {target.name}")
        results.ttft[target.name] = asyncio.run(measure_ttft(
            target, requests=args.ttft_requests, concurrency=args.ttft_concurrency, warmup=20))
    for target in (t for t in targets if t.name in (DIRECT, LIUTONG)):  # the floor and LiteLLM: chat only
        say(f"time to first token, Responses API: {target.name}")
        results.responses_ttft[target.name] = asyncio.run(measure_ttft(
            target, requests=args.ttft_requests, concurrency=args.ttft_concurrency, warmup=20, path=RESPONSES))


def pin(targets: list[Target], args: argparse.Namespace) -> None:
    """The proxies alone on one core (about a Flex instance's vCPU); wrk, the mock and Azurite on the rest."""
    if args.no_pin:
        return
    proxy_cores, load_cores = args.cores
    for target in targets:
        pin_group(target.pid or 0, load_cores if target.name == DIRECT else proxy_cores)
    if (storage := next((t.storage_pid for t in targets if t.storage_pid), None)) is not None:
        pin_group(storage, load_cores)
    time.sleep(0.2)
    print(f"pinned: proxies on core(s) {sorted(proxy_cores)}, load generator, mock and Azurite on "
          f"{sorted(load_cores)}")
    for target in targets:
        print(f"  {target.name:22} {where(target.pid or 0)}")


def run(args: argparse.Namespace) -> None:
    args.cores = split_cores()  # before this process is pinned: it reads this process's own affinity
    if not args.no_pin:
        pin_process(os.getpid(), args.cores[1])  # wrk and every helper process start on the load cores
    wrk = ensure_wrk()
    results = Results()
    with tempfile.TemporaryDirectory(prefix="liutong-bench-") as tmp, signals_as_interrupts():
        work = Path(tmp)
        processes = Processes(work)
        stack = LocalStack(ports=Ports.free())
        try:
            targets = start_targets(processes, stack, work, args, results)
            pin(targets, args)
            measure_wrk(wrk, targets, args, results)
            measure_ttfts(targets, args, results)
            report(results, args)
            liutong = next((t for t in targets if t.name == LIUTONG), None)
            if liutong is not None:
                print(f"\nusage records Liutong wrote to Azurite (warm-ups and probes included): "
                      f"{count_usage_records(stack.settings())}")
            if args.profile and liutong is not None:
                profile_liutong(wrk, liutong, args, Path(args.cache_dir) / "profile")
        finally:
            processes.stop_all()
            stack.stop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds of wrk per target and mode (≥ 10)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="interleaved rounds per mode; the median round (by req/s) is reported")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of unmeasured wrk before each run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--latency-ms", type=float, default=5, help="the mock upstream's latency")
    parser.add_argument("--ttft-requests", type=int, default=300)
    parser.add_argument("--ttft-concurrency", type=int, default=4)
    parser.add_argument("--legs", default="liutong,litellm,floor",
                        help="comma-separated legs beside the direct baseline: liutong, litellm, floor")
    parser.add_argument("--no-litellm", action="store_true", help="leave LiteLLM out of --legs")
    parser.add_argument("--litellm-spec", default="litellm[proxy]", help="what pip installs into LiteLLM's venv")
    parser.add_argument("--cache-dir", default=str(CACHE_DIR), help="LiteLLM's venv and profiles live here")
    parser.add_argument("--liutong-pythonpath",
                        help="extra import path for the Liutong and floor processes only (experiments)")
    parser.add_argument("--no-pin", action="store_true", help="leave every process free to run on any core")
    parser.add_argument("--profile", action="store_true", help="then run py-spy on Liutong under load")
    parser.add_argument("--profile-top", type=int, default=15)
    args = parser.parse_args(argv)
    legs = {leg.strip() for leg in args.legs.split(",") if leg.strip()}
    if legs - set(LEGS):
        parser.error(f"unknown legs {sorted(legs - set(LEGS))}; known: {', '.join(LEGS)}")
    if args.no_litellm:
        legs.discard("litellm")
    args.legs = legs
    return args


def main() -> None:
    args = parse_args()
    try:
        run(args)
    except KeyboardInterrupt:
        say("interrupted: stopped every process this run started")
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
