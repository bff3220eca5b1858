"""Load and measurement: wrk per target (plus the CPU its own processes spent), time to first token."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import re
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.common import ALIAS, CHAT, RESPONSES, Target, chat_body, responses_body, say

WRK_SCRIPT = Path(__file__).resolve().parent / "wrk" / "chat.lua"
_BENCH_LINE = re.compile(r"^BENCH (.*)$", re.MULTILINE)


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    non2xx: int
    cpu_ms: float | None = None  # CPU time of the target's own processes per request (user + system)
    storage_cpu_ms: float | None = None  # CPU time of the target's local storage (Azurite) per request

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class TtftResult:
    samples_ms: list[float]
    errors: int

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.samples_ms) if self.samples_ms else float("nan")

    @property
    def p99_ms(self) -> float:
        return percentile(self.samples_ms, 99) if len(self.samples_ms) > 1 else float("nan")


def percentile(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    say("wrk is missing: installing it with apt-get")
    if os.geteuid() != 0:
        raise SystemExit("wrk is missing and this is not root: `sudo apt-get install -y wrk`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env, stdout=subprocess.DEVNULL)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("apt-get installed no wrk")
    return found


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU of every process in a process group (a target and, e.g., its workers), from /proc."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = _stat_fields(stat)
        if fields is not None and int(fields[2]) == pgid:
            ticks += _cpu_ticks(fields)
    return ticks / os.sysconf("SC_CLK_TCK")


def _stat_fields(stat: Path) -> list[str] | None:
    """The fields after "(comm)" of /proc/<pid>/stat: state ppid pgrp … utime(11) stime(12); None once gone."""
    try:
        return stat.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _cpu_ticks(fields: list[str]) -> int:
    return int(fields[11]) + int(fields[12])


def run_wrk(wrk: str, target: Target, *, stream: bool, seconds: float, args: argparse.Namespace) -> WrkResult:
    """wrk against the target; also the CPU its own processes spent per request (robust to a busy machine)."""
    if target.pid is None:
        return _wrk(wrk, target, stream=stream, seconds=seconds, args=args)
    cpu_before, storage_before = group_cpu_seconds(target.pid), process_cpu_seconds(target.storage_pid)
    result = _wrk(wrk, target, stream=stream, seconds=seconds, args=args)
    cpu = group_cpu_seconds(target.pid) - cpu_before
    storage = process_cpu_seconds(target.storage_pid) - storage_before
    if not result.requests:
        return result
    return dataclasses.replace(
        result, cpu_ms=cpu * 1000 / result.requests,
        storage_cpu_ms=storage * 1000 / result.requests if target.storage_pid is not None else None,
    )


def process_cpu_seconds(pid: int | None) -> float:
    """User + system CPU of one process (0 without one, or once it is gone)."""
    fields = None if pid is None else _stat_fields(Path(f"/proc/{pid}/stat"))
    return 0.0 if fields is None else _cpu_ticks(fields) / os.sysconf("SC_CLK_TCK")


def _wrk(wrk: str, target: Target, *, stream: bool, seconds: float, args: argparse.Namespace) -> WrkResult:
    env = {**os.environ, "BENCH_MODEL": ALIAS, "BENCH_KEY": target.key or "", "BENCH_STREAM": "1" if stream else "0"}
    command = [
        wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
        "--latency", "-s", str(WRK_SCRIPT), target.base_url + CHAT,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False)
    match = _BENCH_LINE.search(done.stdout)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-500:]} {done.stderr[-500:]}")
    return parse_bench_line(match.group(1))


def parse_bench_line(line: str) -> WrkResult:
    """The fields of chat.lua's `BENCH key=value …` line."""
    fields = dict(item.split("=", 1) for item in line.split())
    return WrkResult(
        requests=int(fields["requests"]), seconds=int(fields["duration_us"]) / 1e6,
        p50_ms=int(fields["p50_us"]) / 1000, p90_ms=int(fields["p90_us"]) / 1000,
        p99_ms=int(fields["p99_us"]) / 1000, max_ms=int(fields["max_us"]) / 1000,
        errors=int(fields["errors"]), non2xx=int(fields["non2xx"]),
    )


# What marks the first token: chat's first `data:` line; the Responses API's first text delta (its stream
# opens with response.created and response.in_progress, which carry no token).
_FIRST_TOKEN = {CHAT: b"data:", RESPONSES: b"response.output_text.delta"}


async def measure_ttft(
    target: Target, *, requests: int, concurrency: int, warmup: int, path: str = CHAT
) -> TtftResult:
    """Streamed calls to `path` (CHAT or RESPONSES); time from sending to the first token, then read to the end."""
    body = json.dumps(chat_body(stream=True) if path == CHAT else responses_body()).encode()
    headers = {"content-type": "application/json"}
    if target.key:
        headers["authorization"] = f"Bearer {target.key}"
    url = target.base_url + path
    marker = _FIRST_TOKEN[path]
    samples: list[float] = []
    errors = 0
    remaining = warmup + requests

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            counted = remaining < requests
            try:
                sample = await _first_token_ms(session, url, body, headers, marker)
            except (TimeoutError, aiohttp.ClientError):
                sample = None
            if counted:
                if sample is None:
                    errors += 1
                else:
                    samples.append(sample)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return TtftResult(samples, errors)


async def _first_token_ms(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], marker: bytes
) -> float | None:
    start = time.perf_counter()
    async with session.post(url, data=body, headers=headers) as response:
        if response.status != 200:
            await response.read()
            return None
        first = None
        async for line in response.content:
            if line.startswith(marker) if marker == b"data:" else marker in line:
                first = time.perf_counter()
                break
        await response.content.read()  # the rest of the stream, so the call completes (and is metered)
        return None if first is None else (first - start) * 1000
