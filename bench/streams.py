"""Benchmark: how many concurrent long streams one pinned core holds, through Liutong and through the floor.

N streams (a chunk every 50 ms for 30 s, usage at the end) from bench.stream_mock, through the target, read by
bench.stream_client; N steps up until the time to first token the target adds (p99, against the mock read
directly at the same N) exceeds 50 ms or the lateness it adds between chunks exceeds 10 ms (p99). The target
runs alone on one core; the mock, the client, Azurite and this script on the other(s). Printed per step: each
target's p50/p99, RSS per stream, CPU per stream-second; then the largest N each holds and Liutong's ratio to
the floor's (target ≥ 0.8).

    python -m bench.streams [--steps 100,250,500,750,1000,1500,2000] [--duration 30] [--ramp 10] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import CHAT, DIRECT, FLOOR, HOST, LIUTONG, Target, say
from bench.legs import start_floor
from bench.liutong import start_liutong
from bench.load import group_cpu_seconds
from bench.pinning import pin_group, pin_process, rss_mb, split_cores, where
from bench.processes import Processes, signals_as_interrupts, wait_port_or_exit
from bench.pyspy import finish_recording, print_profile, py_spy_path, start_recording
from localdev.azurite import free_port
from localdev.stack import LocalStack, Ports

ADDED_TTFT_P99_MS = 50.0
ADDED_LATENESS_P99_MS = 10.0


@dataclass
class Step:
    target: str
    streams: int
    ttft_p50_ms: float
    ttft_p99_ms: float
    late_p50_ms: float
    late_p99_ms: float
    errors: int
    cpu_s: float | None  # the target's own processes during the step
    rss_mb: float | None  # the target's resident memory mid-step, less what it held idle before the first step
    client_cpu_s: float
    seconds: float


def start_stream_mock(processes: Processes, interval: float, duration: float) -> Target:
    port = free_port()
    process = processes.start("stream-mock", [
        sys.executable, "-m", "bench.stream_mock", "--host", HOST, "--port", str(port),
        "--interval", str(interval), "--duration", str(duration),
    ])
    wait_port_or_exit(port, process, timeout=30)
    return Target(DIRECT, f"http://{HOST}:{port}", pid=process.pid)


def run_step(
    target: Target, streams: int, args: argparse.Namespace, load_cores: set[int], idle_rss: dict[str, float]
) -> Step:
    cpu_before = group_cpu_seconds(target.pid) if target.pid and target.name != DIRECT else None
    started = time.monotonic()
    client = start_client(target, load_cores, streams=streams, chunks=round(args.duration / args.interval),
                          interval=args.interval, ramp=args.ramp)
    rss: list[float] = []
    idle = idle_rss.get(target.name, 0.0)
    timer = threading.Timer(args.ramp + args.duration / 2, lambda: rss.append(rss_mb(target.pid or 0) - idle))
    timer.start()
    spy = _profile(target, streams, args)
    out, _ = client.communicate()
    timer.cancel()
    if spy is not None:
        _print_profile(target, spy, args)
    seconds = time.monotonic() - started
    result = json.loads(out.strip().splitlines()[-1])
    cpu = group_cpu_seconds(target.pid) - cpu_before if cpu_before is not None and target.pid else None
    return Step(target.name, streams, result["ttft_p50_ms"], result["ttft_p99_ms"], result["late_p50_ms"],
                result["late_p99_ms"], result["errors"], cpu, rss[0] if rss and cpu is not None else None,
                result["client_cpu_s"], seconds)


def start_client(
    target: Target, load_cores: set[int], *, streams: int, chunks: int, interval: float, ramp: float
) -> subprocess.Popen[str]:
    """bench.stream_client against the target, pinned to the load cores; its last line of output is the JSON."""
    command = [sys.executable, "-m", "bench.stream_client", "--url", target.base_url + CHAT, "--streams",
               str(streams), "--interval", str(interval), "--chunks", str(chunks), "--ramp", str(ramp)]
    if target.key:
        command += ["--key", target.key]
    client = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    pin_process(client.pid, load_cores)
    return client


def cpu_ms_per_stream_second(step: Step, args: argparse.Namespace) -> float | None:
    return step.cpu_s * 1000 / (step.streams * args.duration) if step.cpu_s is not None else None


def _profile(target: Target, streams: int, args: argparse.Namespace) -> tuple[subprocess.Popen[str], Path] | None:
    """--profile: py-spy on a proxy through the middle of its first step, once every stream is open."""
    if not args.profile or streams != args.steps[0] or target.name == DIRECT or not target.pid:
        return None
    py_spy = py_spy_path()
    if py_spy is None:
        return None
    raw = Path(tempfile.gettempdir()) / f"liutong-streams-py-spy-{target.name.split()[0]}.txt"
    time.sleep(args.ramp + 1)
    return start_recording(py_spy, target.pid, max(2, round(args.duration - 4)), raw), raw


def _print_profile(target: Target, spy: tuple[subprocess.Popen[str], Path], args: argparse.Namespace) -> None:
    process, raw = spy
    if finish_recording(process, raw):
        print(f"\n  profile of {target.name} while {args.steps[0]} streams flowed (py-spy): {raw}")
        print_profile(raw, args.profile_top)
        print()


def holds(step: Step, direct: Step) -> bool:
    return (step.errors == 0 and step.ttft_p99_ms - direct.ttft_p99_ms <= ADDED_TTFT_P99_MS
            and step.late_p99_ms - direct.late_p99_ms <= ADDED_LATENESS_P99_MS)


def print_step(step: Step, direct: Step, args: argparse.Namespace) -> None:
    cpu = cpu_ms_per_stream_second(step, args)
    per_stream_second = f"{cpu:7.3f}" if cpu is not None else f"{'':7}"
    rss = f"{step.rss_mb * 1024 / step.streams:8.1f}" if step.rss_mb is not None else f"{'':8}"
    added = (f"{step.ttft_p99_ms - direct.ttft_p99_ms:+9.1f} {step.late_p99_ms - direct.late_p99_ms:+9.1f}"
             if step is not direct else f"{'':9} {'':9}")
    verdict = "" if step is direct else ("holds" if holds(step, direct) else "FAILS")
    print(f"  {step.target:22} {step.streams:6d} {step.ttft_p50_ms:8.1f} {step.ttft_p99_ms:8.1f} "
          f"{step.late_p50_ms:8.1f} {step.late_p99_ms:8.1f} {added} {step.errors:6d} {per_stream_second} {rss} "
          f"{step.client_cpu_s / step.seconds:6.0%} {verdict}", flush=True)


def warm_up(target: Target, load_cores: set[int]) -> None:
    """A few short streams first, so the first step does not time a cold process (first connections, imports)."""
    start_client(target, load_cores, streams=50, chunks=5, interval=0.05, ramp=1).communicate()


def measure(targets: list[Target], args: argparse.Namespace, load_cores: set[int]) -> dict[tuple[str, int], Step]:
    """Every step run, by (target, N); a target stops stepping at the first N it does not hold."""
    for target in targets:
        warm_up(target, load_cores)
    idle_rss = {t.name: rss_mb(t.pid or 0) for t in targets[1:]}
    print("idle RSS: " + ", ".join(f"{name} {mb:.0f} MB" for name, mb in idle_rss.items()))
    print(f"\n  {'target':22} {'N':>6} {'TTFT p50':>8} {'TTFT p99':>8} {'late p50':>8} {'late p99':>8} "
          f"{'+TTFT p99':>9} {'+late p99':>9} {'errors':>6} {'CPU ms/stream-s':>7} {'KB/stream':>8} "
          f"{'client':>6}  (ms; + = added over direct at the same N)")
    steps: dict[tuple[str, int], Step] = {}
    failed: set[str] = set()
    for streams in args.steps:
        say(f"{streams} streams: direct")
        direct = steps[(DIRECT, streams)] = run_step(targets[0], streams, args, load_cores, idle_rss)
        print_step(direct, direct, args)
        for target in targets[1:]:
            if target.name in failed:
                continue
            say(f"{streams} streams: {target.name}")
            step = steps[(target.name, streams)] = run_step(target, streams, args, load_cores, idle_rss)
            print_step(step, direct, args)
            if not holds(step, direct):
                failed.add(target.name)
        if len(failed) == len(targets) - 1:
            break
    return steps


def largest_held(steps: dict[tuple[str, int], Step], name: str) -> int:
    held = [n for (target, n), step in steps.items() if target == name and holds(step, steps[(DIRECT, n)])]
    return max(held, default=0)


def run(args: argparse.Namespace) -> None:
    proxy_cores, load_cores = split_cores()
    pin_process(os.getpid(), load_cores)  # this script and its threads (the stand-in) stay off the proxy's core
    with tempfile.TemporaryDirectory(prefix="liutong-streams-") as tmp, signals_as_interrupts():
        processes, stack = Processes(Path(tmp)), LocalStack(ports=Ports.free())
        try:
            mock = start_stream_mock(processes, args.interval, args.duration)
            targets = [mock, start_floor(processes, mock.base_url), start_liutong(processes, stack, mock.base_url,
                                                                                   Path(tmp), args.liutong_pythonpath)]
            storage = targets[2].storage_pid
            for target in targets:
                pin_group(target.pid or 0, proxy_cores if target.name in (FLOOR, LIUTONG) else load_cores)
            if storage is not None:
                pin_group(storage, load_cores)
            print(f"streams of {args.duration:g} s, a chunk every {args.interval * 1000:g} ms; proxy core(s) "
                  f"{sorted(proxy_cores)}, load core(s) {sorted(load_cores)}")
            for target in targets:
                print(f"  {target.name:22} pid {target.pid}: {where(target.pid or 0)}")
            if storage is not None:
                print(f"  {'Azurite':22} pid {storage}: {where(storage)}")
            steps = measure(targets, args, load_cores)
            for target in targets[1:]:
                print(f"  after the run, {target.name}: {where(target.pid or 0)}")
            report(steps, args)
        finally:
            processes.stop_all()
            stack.stop()


def report(steps: dict[tuple[str, int], Step], args: argparse.Namespace) -> None:
    floor, liutong = largest_held(steps, FLOOR), largest_held(steps, LIUTONG)
    print(f"\nlargest N that holds (added TTFT p99 ≤ {ADDED_TTFT_P99_MS:g} ms, added lateness p99 ≤ "
          f"{ADDED_LATENESS_P99_MS:g} ms, no errors) of the steps {args.steps}:")
    print(f"  floor {floor}, Liutong {liutong}: Liutong "
          f"{f'{liutong / floor:.2f}x' if floor else 'n/a'} the floor's (target ≥ 0.8x)")
    if args.steps and max(floor, liutong) == args.steps[-1]:
        print("  (the last step held: add larger steps to find the limit)")
    ours, theirs = steps.get((LIUTONG, liutong)), steps.get((FLOOR, liutong))
    ours_ms = cpu_ms_per_stream_second(ours, args) if ours is not None else None
    theirs_ms = cpu_ms_per_stream_second(theirs, args) if theirs is not None else None
    if ours_ms is None or theirs_ms is None:
        return
    share = ours_ms / (ours_ms + theirs_ms)
    suggested = flex_concurrency(liutong, share)
    print(f"  at N={liutong}: CPU per stream-second Liutong {ours_ms:.3f} ms, floor {theirs_ms:.3f} ms "
          f"({ours_ms / theirs_ms:.2f}x)")
    print(f"  httpPerInstanceConcurrency for one vCPU: {liutong} x {share:.2f} (Liutong's share when the Functions "
          f"host relays each stream at the floor's cost) x {HEADROOM:g} (headroom) = {suggested}")


# Of the vCPU left to Liutong: a Flex instance's vCPU also runs the Functions host, which relays every request and
# stream to the worker; that cost is not measurable here (no Core Tools), so report() takes it to be the floor's.
HEADROOM = 0.8


def flex_concurrency(held: int, liutong_share: float) -> int:
    """Streams one vCPU takes with the host's relay and headroom, rounded down to a multiple of 25."""
    return max(25, int(held * liutong_share * HEADROOM) // 25 * 25)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="100,250,500,750,1000,1500,2000")
    parser.add_argument("--duration", type=float, default=30, help="seconds each stream lasts")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between chunks")
    parser.add_argument("--ramp", type=float, default=10.0, help="seconds over which a step opens its streams")
    parser.add_argument("--profile", action="store_true", help="py-spy on each proxy during the first step")
    parser.add_argument("--liutong-pythonpath", help="import Liutong from here first (an A/B against another checkout)")
    parser.add_argument("--profile-top", type=int, default=12)
    args = parser.parse_args(argv)
    args.steps = [int(s) for s in args.steps.split(",") if s.strip()]
    return args


def main() -> None:
    try:
        run(parse_args())
    except KeyboardInterrupt:
        say("interrupted: stopped every process this run started")
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
