"""Benchmark: Liutong's proxy against the mock upstream called directly, and against the LiteLLM proxy.

One run, one machine: the mock upstream (5 ms latency, its own process) is the limit; Liutong's local
server (its own process, a real key in Azurite, plan limits and usage recording on) and LiteLLM's proxy
(its own venv under .local/bench/, no database) both forward to it. Load comes from wrk (installed with
apt-get when missing), the same Lua script for every target; time to first token from a small aiohttp
client. Every figure is printed beside the direct baseline measured in the same run, and so is the CPU
time each target's own processes spent per request (from /proc), which a busy machine disturbs least.

    .venv/bin/python -m bench.proxy [--duration 10] [--connections 32] [--no-litellm] [--profile]

A leg that cannot start (LiteLLM not installable, Liutong's proxy route missing) is reported and skipped;
the others still run. Every process the script starts is stopped on exit, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import aiohttp
import httpx
from pydantic import SecretStr

from core.settings import Settings
from core.tables import Tables
from keystore.keys import display_prefix, generate_key, hash_key, random_key_id
from keystore.models import KeyRecord, KeyStatus
from keystore.repository import KeyRepository
from keystore.teams import Team, TeamStore
from localdev.azurite import free_port, wait_for_port
from localdev.stack import LocalStack, Ports

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO_ROOT / ".local" / "bench"  # .local/ is git-ignored
WRK_SCRIPT = Path(__file__).resolve().parent / "wrk" / "chat.lua"
CHAT = "/v1/chat/completions"
ALIAS = "bench-chat"
TEAM = "bench"
PLAN_ID = "bench-unlimited"
PROMPT = "Say hello to the benchmark."
# Environment variables that would make azure-identity look elsewhere than the stand-in's App Service MSI.
_COMPETING_IDENTITY_VARS = ("MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT", "IDENTITY_SERVER_THUMBPRINT")
TARGETS = {"throughput": 0.8, "added_p50_ms": 1.0, "added_p99_ms": 5.0, "vs_litellm": 50.0}


class LegUnavailable(Exception):
    """A target that could not be started or does not answer; the run goes on without it."""


@dataclass
class Target:
    name: str
    base_url: str
    key: str | None = None
    pid: int | None = None


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


@dataclass
class Results:
    plain: dict[str, WrkResult] = field(default_factory=dict)
    stream: dict[str, WrkResult] = field(default_factory=dict)
    ttft: dict[str, TtftResult] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def percentile(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes


class Processes:
    """Every child process of the run, each in its own session so that it (and its own children,
    e.g. uvicorn workers) can be stopped as a group. Output goes to a log file per process."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._running: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self._log_dir / f"{name}.log").open("wb")
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=REPO_ROOT, env=env, start_new_session=True,
        )
        self._running.append((name, process, log))
        return process

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self._log_dir / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def stop_all(self) -> None:
        for _, process, _ in reversed(self._running):
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for _, process, log in reversed(self._running):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait(timeout=5)
            _signal_group(process, signal.SIGKILL)  # stragglers of the group (workers)
            log.close()
        self._running.clear()


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)  # the group this script created for that child (start_new_session)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LegUnavailable(f"exited with {process.returncode} before answering {url}")
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code < 500:
                return
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.25)
    raise LegUnavailable(f"{url} not ready after {timeout:.0f}s ({last})")


def probe(target: Target, stream: bool = False) -> None:
    """One real chat completion through the target; raises LegUnavailable with what it answered."""
    body: dict[str, Any] = {"model": ALIAS, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 64}
    if stream:
        body["stream"] = True
    headers = {"authorization": f"Bearer {target.key}"} if target.key else {}
    try:
        response = httpx.post(target.base_url + CHAT, json=body, headers=headers, timeout=60)
    except httpx.HTTPError as exc:
        raise LegUnavailable(f"POST {CHAT} failed: {exc!r}") from exc
    if response.status_code != 200:
        raise LegUnavailable(f"POST {CHAT} answered {response.status_code}: {response.text[:300]}")
    if stream and b"data:" not in response.content:
        raise LegUnavailable(f"streaming POST {CHAT} sent no SSE data: {response.text[:300]}")
    if not stream and "choices" not in response.json():
        raise LegUnavailable(f"POST {CHAT} answered without choices: {response.text[:300]}")


# ---------------------------------------------------------------- wrk


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


_BENCH_LINE = re.compile(r"^BENCH (.*)$", re.MULTILINE)


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU of every process in a process group (a target and, e.g., its workers), from /proc."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == pgid:  # fields after "(comm)": state ppid pgrp … utime(11) stime(12)
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def run_wrk(wrk: str, target: Target, *, stream: bool, seconds: float, args: argparse.Namespace) -> WrkResult:
    """wrk against the target; also the CPU its own processes spent per request (robust to a busy machine)."""
    if target.pid is None:
        return _wrk(wrk, target, stream=stream, seconds=seconds, args=args)
    cpu_before = group_cpu_seconds(target.pid)
    result = _wrk(wrk, target, stream=stream, seconds=seconds, args=args)
    cpu = group_cpu_seconds(target.pid) - cpu_before
    return dataclasses.replace(result, cpu_ms=cpu * 1000 / result.requests) if result.requests else result


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
    fields = dict(item.split("=", 1) for item in match.group(1).split())
    return WrkResult(
        requests=int(fields["requests"]), seconds=int(fields["duration_us"]) / 1e6,
        p50_ms=int(fields["p50_us"]) / 1000, p90_ms=int(fields["p90_us"]) / 1000,
        p99_ms=int(fields["p99_us"]) / 1000, max_ms=int(fields["max_us"]) / 1000,
        errors=int(fields["errors"]), non2xx=int(fields["non2xx"]),
    )


# ---------------------------------------------------------------- time to first token


async def measure_ttft(target: Target, *, requests: int, concurrency: int, warmup: int) -> TtftResult:
    """Streamed chat completions; time from sending to the first `data:` line, then read to the end."""
    body = json.dumps({"model": ALIAS, "messages": [{"role": "user", "content": PROMPT}],
                       "max_tokens": 64, "stream": True}).encode()
    headers = {"content-type": "application/json"}
    if target.key:
        headers["authorization"] = f"Bearer {target.key}"
    samples: list[float] = []
    errors = 0
    remaining = warmup + requests
    timeout = aiohttp.ClientTimeout(total=60)

    async def one(session: aiohttp.ClientSession) -> float | None:
        start = time.perf_counter()
        async with session.post(target.base_url + CHAT, data=body, headers=headers) as response:
            if response.status != 200:
                await response.read()
                return None
            first = None
            async for line in response.content:
                if line.startswith(b"data:"):
                    first = time.perf_counter()
                    break
            await response.content.read()  # the rest of the stream, so the call completes (and is metered)
            return None if first is None else (first - start) * 1000

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            counted = remaining < requests
            try:
                sample = await one(session)
            except (TimeoutError, aiohttp.ClientError):
                sample = None
            if counted:
                if sample is None:
                    errors += 1
                else:
                    samples.append(sample)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return TtftResult(samples, errors)


# ---------------------------------------------------------------- the legs


def start_mock(processes: Processes, latency_ms: float) -> Target:
    port = free_port()
    process = processes.start("mock-upstream", [
        sys.executable, "-m", "localdev.mock_upstream",
        "--host", HOST, "--port", str(port), "--latency-ms", str(latency_ms), "--no-record",
    ])
    base = f"http://{HOST}:{port}"
    try:
        wait_http(base + "/v1/models", process, timeout=30)
    except LegUnavailable as exc:
        raise SystemExit(f"the mock upstream did not start: {exc}\n{processes.log_tail('mock-upstream')}") from exc
    return Target("direct (mock)", base, pid=process.pid)


def write_configs(directory: Path, mock_url: str) -> tuple[Path, Path]:
    upstreams = {"description": "Benchmark: one alias on the mock upstream.",
                 "models": {ALIAS: {"kind": "openai", "base_url": f"{mock_url}/v1", "model": "mock-model"}}}
    plans = {"plans": [{
        "plan_id": PLAN_ID, "models": [ALIAS],
        "rpm": 1_000_000_000, "tpm": 1_000_000_000_000,  # far above anything a run can reach
        "mode": "quota", "monthly_included_tokens": 1_000_000, "overage": "bill",  # usage recorded, never blocked
        "dimension": "tokens_1k", "dimension_unit_tokens": 1000,
    }]}
    upstreams_path, plans_path = directory / "upstreams.json", directory / "plans.json"
    upstreams_path.write_text(json.dumps(upstreams, indent=2))
    plans_path.write_text(json.dumps(plans, indent=2))
    return upstreams_path, plans_path


async def seed_key(settings: Settings) -> str:
    """A team on the benchmark plan and one fresh key of it, written with the real stores."""
    tables = Tables(settings)
    try:
        await tables.ensure_tables()
        await TeamStore(tables).put(Team(team=TEAM, plan_id=PLAN_ID, description="benchmark"))
        key = generate_key()
        await KeyRepository(tables).insert(KeyRecord(
            key_hash=hash_key(key), key_id=random_key_id(), prefix=display_prefix(key), team=TEAM,
            description="benchmark", status=KeyStatus.ACTIVE, created_at=datetime.now(UTC),
        ))
        return key
    finally:
        await tables.close()


def count_usage_records(settings: Settings, wait_seconds: float = 2.0) -> str:
    """Proof that usage recording was on: the rows in the usage table once the writer has flushed."""

    async def count() -> int:
        tables = Tables(settings)
        try:
            rows = tables.table("usage").list_entities(select=["RowKey"], results_per_page=1000)
            return sum([1 async for _ in rows])
        finally:
            await tables.close()

    time.sleep(wait_seconds)
    try:
        return str(asyncio.run(count()))
    except Exception as exc:  # noqa: BLE001 - a sanity figure; the run's results stand without it
        return f"could not count ({exc!r:.200})"


def settings_environ(settings: Settings) -> dict[str, str]:
    environ = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        environ[f"LIUTONG_{name.upper()}"] = str(value)
    return environ


def start_liutong(
    processes: Processes, stack: LocalStack, mock_url: str, work: Path, extra_path: str | None = None
) -> Target:
    upstreams_path, plans_path = write_configs(work, mock_url)
    try:
        stack.start_dependencies()  # Azurite + the stand-in (thread); sets IDENTITY_* in this process
    except Exception as exc:
        raise LegUnavailable(f"Azurite or the stand-in did not start: {exc!r}") from exc
    assert stack.standin is not None
    stack.setting_overrides.update({
        "upstreams_file": str(upstreams_path), "plans_file": str(plans_path),
        "metering_endpoint": stack.standin.base_url, "usage_journal_dir": str(work / "usage-journal"),
    })
    settings = stack.settings()
    key = asyncio.run(seed_key(settings))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIUTONG_") and k not in _COMPETING_IDENTITY_VARS}
    env.update(settings_environ(settings))
    env.update(stack.standin.environ())
    if extra_path:  # experiments only: e.g. a folder with uvloop + httptools, which uvicorn then picks
        env["PYTHONPATH"] = os.pathsep.join(p for p in (extra_path, env.get("PYTHONPATH")) if p)
    port = stack.ports.service
    command = [sys.executable, "-m", "localdev.serve", "--host", HOST, "--port", str(port)]
    process = processes.start("liutong", command, env)
    target = Target("Liutong", f"http://{HOST}:{port}", key=key, pid=process.pid)
    try:
        wait_http(target.base_url + "/api/health", process, timeout=60)
        probe(target)
        probe(target, stream=True)
    except LegUnavailable as exc:
        raise LegUnavailable(f"{exc}\n{processes.log_tail('liutong')}".strip()) from exc
    return target


def ensure_litellm(venv: Path, spec: str) -> Path:
    executable = venv / "bin" / "litellm"
    marker = venv / ".installed"
    if executable.exists() and marker.exists():
        return executable
    say(f"installing {spec} into {venv} (first run only; a few minutes)")
    try:
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", spec],
            check=True, capture_output=True, text=True, timeout=1800,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", None) or ""
        raise LegUnavailable(f"could not install {spec}: {exc!r} {str(detail)[-500:]}") from exc
    marker.write_text(spec + "\n")
    return executable


def litellm_version(venv: Path) -> str:
    code = "import importlib.metadata as m; print(m.version('litellm'))"
    done = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "?"


def start_litellm(processes: Processes, mock_url: str, work: Path, args: argparse.Namespace) -> Target:
    venv = Path(args.cache_dir) / "litellm-venv"
    executable = ensure_litellm(venv, args.litellm_spec)
    master_key = "sk-bench-" + secrets.token_urlsafe(16)
    config = work / "litellm_config.yaml"
    # JSON is YAML: no PyYAML needed here. An openai-compatible model on the same mock, no database.
    config.write_text(json.dumps({
        "model_list": [{"model_name": ALIAS, "litellm_params": {
            "model": "openai/mock-model", "api_base": f"{mock_url}/v1", "api_key": "sk-mock-upstream"}}],
        "general_settings": {"master_key": master_key},
        "litellm_settings": {"telemetry": False},
    }, indent=2))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "LITELLM_MASTER_KEY")}
    env.update({"LITELLM_MASTER_KEY": master_key, "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "LITELLM_TELEMETRY": "False", "NO_DOCS": "True"})
    port = free_port()
    process = processes.start("litellm", [
        str(executable), "--config", str(config), "--host", HOST, "--port", str(port), "--num_workers", "1",
    ], env)
    target = Target(f"LiteLLM {litellm_version(venv)}", f"http://{HOST}:{port}", key=master_key, pid=process.pid)
    try:
        wait_port_or_exit(port, process, timeout=180)
        wait_http(target.base_url + "/health/liveliness", process, timeout=60)
        probe(target)
        probe(target, stream=True)
    except LegUnavailable as exc:
        raise LegUnavailable(f"{exc}\n{processes.log_tail('litellm')}".strip()) from exc
    return target


def wait_port_or_exit(port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    try:
        wait_for_port(HOST, port, timeout=timeout, process=process)
    except (RuntimeError, TimeoutError) as exc:
        raise LegUnavailable(str(exc)) from exc


# ---------------------------------------------------------------- profiling


def profile_liutong(wrk: str, target: Target, args: argparse.Namespace, out_dir: Path) -> None:
    """py-spy on the Liutong process while wrk loads it (non-streaming); prints the hottest functions."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        say("--profile: py-spy is missing (`.venv/bin/pip install py-spy`); skipped")
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / "liutong-py-spy.txt"
    seconds = max(5, round(args.duration))
    spy = subprocess.Popen(
        [py_spy, "record", "--pid", str(target.pid), "--duration", str(seconds + 2), "--rate", "250",
         "--format", "raw", "--output", str(raw)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        time.sleep(1)
        result = run_wrk(wrk, target, stream=False, seconds=seconds, args=args)
        _, err = spy.communicate(timeout=60)
    finally:
        if spy.poll() is None:
            spy.terminate()
            spy.wait(timeout=10)
    if spy.returncode != 0 or not raw.exists():
        say(f"--profile: py-spy failed ({spy.returncode}): {(err or '')[-400:]}")
        return
    print(f"\nprofile of Liutong under load (py-spy, {result.rps:.0f} req/s while sampled): {raw}")
    print_profile(raw, args.profile_top)


# Leaf frames that mean "waiting", not working: idle thread-pool workers and the event loop's select.
_IDLE_LEAVES = ("_worker (concurrent/futures/thread.py:81)", "EpollSelector.select (selectors.py")
# Where the busy samples go, by a frame somewhere on the stack (first match wins, most specific first).
_AREAS = (
    ("upstream call (aiohttp client, proxy/forwarding)", ("UpstreamClient.", "read_all (proxy/forwarding")),
    ("usage writer (metering/usage_*)", ("UsageWriter.", "UsageStore.")),
    ("limiter (rate + quota)", ("PlanLimiter.",)),
    ("principal resolution", ("PrincipalResolver.",)),
    ("rest of the proxy handler", ("chat_completions (proxy/handlers",)),
    ("HTTP server outside the handler (uvicorn, h11, starlette)", ("uvicorn/", "h11/", "starlette/")),
    ("Azure SDK outside the above", ("azure/",)),
)


def print_profile(raw: Path, top: int) -> None:
    """A summary of py-spy's collapsed stacks: idle share, busy time by area, hottest frames."""
    own: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    total = idle = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        if frames[-1].startswith(_IDLE_LEAVES):
            idle += count
            continue
        own[_short_frame(frames[-1])] += count
        area = next((name for name, marks in _AREAS if any(m in f for f in frames for m in marks)), "other")
        areas[area] += count
    busy = total - idle
    if not busy:
        print("  (no busy samples)")
        return
    print(f"  {total} samples, {100 * busy / total:.0f}% busy (idle thread-pool workers and select() left out);"
          " share of busy samples by area:")
    for name, count in areas.most_common():
        print(f"  {100 * count / busy:6.1f}%  {name}")
    print("  hottest frames (own time, share of busy samples):")
    for frame, count in own.most_common(top):
        print(f"  {100 * count / busy:6.1f}%  {frame}")


def _short_frame(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)"; keep function and a short path.
    match = re.match(r"^(.*) \((.*?)(?::\d+)?\)$", frame)
    if not match:
        return frame
    function, path = match.groups()
    for marker in ("site-packages/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    else:
        path = path.replace(str(REPO_ROOT) + "/", "")
    return f"{function} ({path})"


# ---------------------------------------------------------------- report


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def report(results: Results, args: argparse.Namespace) -> None:
    rounds = f", median of {args.rounds} interleaved rounds" if args.rounds > 1 else ""
    print(f"\nwrk -t{args.threads} -c{args.connections} -d{args.duration:g}s per target{rounds}, mock upstream latency "
          f"{args.latency_ms:g} ms, {os.cpu_count()} CPUs shared by load generator, proxies and mock")
    for title, table in (("non-streaming chat completions", results.plain),
                         ("streaming chat completions (wrk: whole SSE response)", results.stream)):
        print(f"\n{title}")
        print(f"  {'target':22} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>7}"
              f" {'CPU ms/req':>11}")
        for name, r in table.items():
            cpu = f"{r.cpu_ms:11.3f}" if r.cpu_ms is not None else f"{'':11}"
            print(f"  {name:22} {r.rps:9.0f} {r.p50_ms:8.2f} {r.p90_ms:8.2f} {r.p99_ms:8.2f} {r.max_ms:8.1f} "
                  f"{r.errors + r.non2xx:7d} {cpu}")
    if results.ttft:
        print(f"\ntime to first token (aiohttp, {args.ttft_requests} streamed requests, {args.ttft_concurrency} "
              "concurrent)")
        print(f"  {'target':22} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
        for name, t in results.ttft.items():
            print(f"  {name:22} {t.p50_ms:8.2f} {t.p99_ms:8.2f} {t.errors:7d}")
    summarize(results)
    for name, reason in results.skipped.items():
        print(f"\n{name}: not measured: {reason}")


def summarize(results: Results) -> None:
    direct = "direct (mock)"
    liutong = "Liutong"
    litellm = next((n for n in results.plain if n.startswith("LiteLLM")), None)
    if liutong not in results.plain:
        return
    print("\nLiutong against the targets of the issue")
    for title, table in (("non-streaming", results.plain), ("streaming", results.stream)):
        if liutong not in table or direct not in table:
            continue
        lt, d = table[liutong], table[direct]
        added50, added99 = lt.p50_ms - d.p50_ms, lt.p99_ms - d.p99_ms
        enough = lt.rps >= TARGETS["throughput"] * d.rps
        print(f"  {title}: throughput {ratio(lt.rps, d.rps)} direct ({verdict(enough)}"
              f" ≥ {TARGETS['throughput']}x); added p50 {added50:+.2f} ms "
              f"({verdict(added50 <= TARGETS['added_p50_ms'])}"
              f" ≤ {TARGETS['added_p50_ms']:g} ms), added p99 {added99:+.2f} ms "
              f"({verdict(added99 <= TARGETS['added_p99_ms'])} ≤ {TARGETS['added_p99_ms']:g} ms)")
        if lt.cpu_ms and d.cpu_ms:
            line = (f"  {title}: Liutong CPU {lt.cpu_ms:.3f} ms/request = {ratio(lt.cpu_ms, d.cpu_ms)} the mock's "
                    f"(one Liutong process tops out near {1000 / lt.cpu_ms:.0f} req/s per core)")
            if litellm and litellm in table and table[litellm].cpu_ms:
                line += f"; LiteLLM {ratio(table[litellm].cpu_ms or 0, lt.cpu_ms)} Liutong's"
            print(line)
        if litellm and litellm in table:
            ll = table[litellm]
            print(f"  {title}: throughput {ratio(lt.rps, ll.rps)} LiteLLM "
                  f"({verdict(lt.rps >= TARGETS['vs_litellm'] * ll.rps)} ≥ {TARGETS['vs_litellm']:g}x); "
                  f"p50 {ratio(lt.p50_ms, ll.p50_ms)} LiteLLM's")
    if liutong in results.ttft and direct in results.ttft:
        lt_t, d_t = results.ttft[liutong], results.ttft[direct]
        added50, added99 = lt_t.p50_ms - d_t.p50_ms, lt_t.p99_ms - d_t.p99_ms
        line = (f"  time to first token: added p50 {added50:+.2f} ms ({verdict(added50 <= TARGETS['added_p50_ms'])}), "
                f"added p99 {added99:+.2f} ms ({verdict(added99 <= TARGETS['added_p99_ms'])})")
        if litellm and litellm in results.ttft:
            line += f"; p50 {ratio(lt_t.p50_ms, results.ttft[litellm].p50_ms)} LiteLLM's"
        print(line)


# ---------------------------------------------------------------- main


@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[None]:
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args: argparse.Namespace) -> None:
    wrk = ensure_wrk()
    results = Results()
    with tempfile.TemporaryDirectory(prefix="liutong-bench-") as tmp, signals_as_interrupts():
        work = Path(tmp)
        processes = Processes(work)
        stack = LocalStack(ports=Ports(service=free_port(), standin=free_port(), azurite=free_port()))
        try:
            mock = start_mock(processes, args.latency_ms)
            targets = [mock]
            say(f"mock upstream: {mock.base_url}")
            if "liutong" in args.legs:
                try:
                    targets.append(start_liutong(processes, stack, mock.base_url, work, args.liutong_pythonpath))
                    say(f"Liutong: {targets[-1].base_url}")
                except LegUnavailable as exc:
                    results.skipped["Liutong"] = str(exc)
                    say(f"Liutong: not measured: {exc}")
            if "litellm" in args.legs:
                try:
                    targets.append(start_litellm(processes, mock.base_url, work, args))
                    say(f"{targets[-1].name}: {targets[-1].base_url}")
                except LegUnavailable as exc:
                    results.skipped["LiteLLM"] = str(exc)
                    say(f"LiteLLM: not measured: {exc}")
            for stream, table in ((False, results.plain), (True, results.stream)):
                rounds: dict[str, list[WrkResult]] = {t.name: [] for t in targets}
                for number in range(args.rounds):  # interleaved, so drift on a shared machine hits all alike
                    for target in targets:
                        mode = "streaming" if stream else "non-streaming"
                        say(f"wrk {mode} {number + 1}/{args.rounds}: {target.name}")
                        if args.warmup:
                            run_wrk(wrk, target, stream=stream, seconds=args.warmup, args=args)
                        rounds[target.name].append(
                            run_wrk(wrk, target, stream=stream, seconds=args.duration, args=args))
                for name, runs in rounds.items():
                    table[name] = sorted(runs, key=lambda r: r.rps)[len(runs) // 2]  # the median round
            for target in targets:
                say(f"time to first token: {target.name}")
                results.ttft[target.name] = asyncio.run(measure_ttft(
                    target, requests=args.ttft_requests, concurrency=args.ttft_concurrency, warmup=20))
            report(results, args)
            liutong = next((t for t in targets if t.name == "Liutong"), None)
            if liutong is not None:
                print(f"\nusage records Liutong wrote to Azurite (warm-ups and probes included): "
                      f"{count_usage_records(stack.settings())}")
            if args.profile and liutong is not None:
                profile_liutong(wrk, liutong, args, Path(args.cache_dir) / "profile")
        finally:
            processes.stop_all()
            stack.stop()


def main() -> None:
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
    parser.add_argument("--legs", default="liutong,litellm",
                        help="comma-separated legs beside the direct baseline: liutong, litellm")
    parser.add_argument("--no-litellm", action="store_true", help="same as --legs liutong")
    parser.add_argument("--litellm-spec", default="litellm[proxy]", help="what pip installs into LiteLLM's venv")
    parser.add_argument("--cache-dir", default=str(CACHE_DIR), help="LiteLLM's venv and profiles live here")
    parser.add_argument("--liutong-pythonpath", help="extra import path for the Liutong process only (experiments)")
    parser.add_argument("--profile", action="store_true", help="then run py-spy on Liutong under load")
    parser.add_argument("--profile-top", type=int, default=15)
    args = parser.parse_args()
    legs = {leg.strip() for leg in args.legs.split(",") if leg.strip()}
    if args.no_litellm:
        legs.discard("litellm")
    args.legs = legs
    try:
        run(args)
    except KeyboardInterrupt:
        say("interrupted: stopped every process this run started")
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
