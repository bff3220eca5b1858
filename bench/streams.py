"""Benchmark: how many concurrent long streams one pinned core holds, through Liutong and through the floor.

N streams (a chunk every 50 ms for 30 s, usage at the end) from bench.stream_mock, through the target, read by
bench.stream_client; N steps up until the time to first token the target adds (p99, against the mock read
directly at the same N) exceeds 50 ms or the lateness it adds between chunks exceeds 10 ms (p99). The target
runs alone on one core; the mock, the client, Azurite and this script on the other(s). Printed per step: each
target's p50/p99, RSS per stream, CPU per stream-second; then the largest N each holds and Liutong's ratio to
the floor's (target ≥ 0.8).

    python -m bench.streams [--steps 100,250,500,1000,2000] [--duration 30]
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
    chunks = round(args.duration / args.interval)
    command = [sys.executable, "-m", "bench.stream_client", "--url", target.base_url + CHAT, "--streams",
               str(streams), "--interval", str(args.interval), "--chunks", str(chunks), "--ramp", str(args.ramp)]
    if target.key:
        command += ["--key", target.key]
    cpu_before = group_cpu_seconds(target.pid) if target.pid and target.name != DIRECT else None
    started = time.monotonic()
    client = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    pin_process(client.pid, load_cores)
    rss: list[float] = []
    idle = idle_rss.get(target.name, 0.0)
    timer = threading.Timer(args.ramp + args.duration / 2, lambda: rss.append(rss_mb(target.pid or 0) - idle))
    timer.start()
    out, _ = client.communicate()
    timer.cancel()
    seconds = time.monotonic() - started
    result = json.loads(out.strip().splitlines()[-1])
    cpu = group_cpu_seconds(target.pid) - cpu_before if cpu_before is not None and target.pid else None
    return Step(target.name, streams, result["ttft_p50_ms"], result["ttft_p99_ms"], result["late_p50_ms"],
                result["late_p99_ms"], result["errors"], cpu, rss[0] if rss and cpu is not None else None,
                result["client_cpu_s"], seconds)


def holds(step: Step, direct: Step) -> bool:
    return (step.errors == 0 and step.ttft_p99_ms - direct.ttft_p99_ms <= ADDED_TTFT_P99_MS
            and step.late_p99_ms - direct.late_p99_ms <= ADDED_LATENESS_P99_MS)


def print_step(step: Step, direct: Step, args: argparse.Namespace) -> None:
    per_stream_second = (f"{step.cpu_s * 1000 / (step.streams * args.duration):7.3f}"
                         if step.cpu_s is not None else f"{'':7}")
    rss = f"{step.rss_mb * 1024 / step.streams:8.1f}" if step.rss_mb is not None else f"{'':8}"
    added = (f"{step.ttft_p99_ms - direct.ttft_p99_ms:+9.1f} {step.late_p99_ms - direct.late_p99_ms:+9.1f}"
             if step is not direct else f"{'':9} {'':9}")
    verdict = "" if step is direct else ("holds" if holds(step, direct) else "FAILS")
    print(f"  {step.target:22} {step.streams:6d} {step.ttft_p50_ms:8.1f} {step.ttft_p99_ms:8.1f} "
          f"{step.late_p50_ms:8.1f} {step.late_p99_ms:8.1f} {added} {step.errors:6d} {per_stream_second} {rss} "
          f"{step.client_cpu_s / step.seconds:6.0%} {verdict}", flush=True)


def measure(targets: list[Target], args: argparse.Namespace, load_cores: set[int]) -> dict[str, int]:
    idle_rss = {t.name: rss_mb(t.pid or 0) for t in targets[1:]}
    print("idle RSS: " + ", ".join(f"{name} {mb:.0f} MB" for name, mb in idle_rss.items()))
    print(f"\n  {'target':22} {'N':>6} {'TTFT p50':>8} {'TTFT p99':>8} {'late p50':>8} {'late p99':>8} "
          f"{'+TTFT p99':>9} {'+late p99':>9} {'errors':>6} {'CPU ms/stream-s':>7} {'KB/stream':>8} "
          f"{'client':>6}  (ms; + = added over direct at the same N)")
    largest = {t.name: 0 for t in targets[1:]}
    failed: set[str] = set()
    for streams in args.steps:
        say(f"{streams} streams: direct")
        direct = run_step(targets[0], streams, args, load_cores, idle_rss)
        print_step(direct, direct, args)
        for target in targets[1:]:
            if target.name in failed:
                continue
            say(f"{streams} streams: {target.name}")
            step = run_step(target, streams, args, load_cores, idle_rss)
            print_step(step, direct, args)
            if holds(step, direct):
                largest[target.name] = streams
            else:
                failed.add(target.name)
        if len(failed) == len(largest):
            break
    return largest


def run(args: argparse.Namespace) -> None:
    proxy_cores, load_cores = split_cores()
    pin_process(os.getpid(), load_cores)  # this script and its threads (the stand-in) stay off the proxy's core
    with tempfile.TemporaryDirectory(prefix="liutong-streams-") as tmp, signals_as_interrupts():
        processes, stack = Processes(Path(tmp)), LocalStack(ports=Ports.free())
        try:
            mock = start_stream_mock(processes, args.interval, args.duration)
            targets = [mock, start_floor(processes, mock.base_url), start_liutong(processes, stack, mock.base_url,
                                                                                   Path(tmp))]
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
            largest = measure(targets, args, load_cores)
            for target in targets[1:]:
                print(f"  after the run, {target.name}: {where(target.pid or 0)}")
            report(largest, args)
        finally:
            processes.stop_all()
            stack.stop()


def report(largest: dict[str, int], args: argparse.Namespace) -> None:
    floor, liutong = largest.get(FLOOR, 0), largest.get(LIUTONG, 0)
    print(f"\nlargest N that holds (added TTFT p99 ≤ {ADDED_TTFT_P99_MS:g} ms, added lateness p99 ≤ "
          f"{ADDED_LATENESS_P99_MS:g} ms, no errors) of the steps {args.steps}:")
    print(f"  floor {floor}, Liutong {liutong}: Liutong "
          f"{f'{liutong / floor:.2f}x' if floor else 'n/a'} the floor's (target ≥ 0.8x)")
    if args.steps and max(largest.values(), default=0) == args.steps[-1]:
        print("  (the last step held: add larger steps to find the limit)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="100,250,500,1000,2000")
    parser.add_argument("--duration", type=float, default=30, help="seconds each stream lasts")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between chunks")
    parser.add_argument("--ramp", type=float, default=2.0, help="seconds over which a step opens its streams")
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
