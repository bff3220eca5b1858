"""Benchmark: what Liutong's own CPU per non-streamed chat completion is spent on, feature by feature.

The floor (bench/passthrough.py) and Liutong's local app are called in this process, straight through ASGI:
no HTTP server, no load generator, so the figure is the app's own work plus its aiohttp call to the mock
upstream. This process runs alone on one core; the mock (5 ms latency) and Azurite on the other(s). Liutong
is measured as deployed and with parts of it turned off on its built services, one at a time:
  - no usage record: UsageWriter.record returns at once (no raw row, no aggregates, no transaction);
  - no limits: PlanLimiter.admit lets every call through without buckets, leases or quota, and no headers;
  - neither.
What each switch saves is that feature's cost per call; what is left beside the floor is the rest of the proxy
(auth, parsing, routing, the answer's usage, headers). Rounds interleave the variants; medians are printed.

    python -m bench.budget [--calls 20000] [--rounds 3] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import uvloop

import services
from bench.common import CHAT, chat_body, say
from bench.legs import start_mock
from bench.liutong import liutong_settings, seed_key, service_environ
from bench.passthrough import build_app as build_floor
from bench.pinning import pin_group, pin_process, split_cores, where
from bench.processes import Processes, signals_as_interrupts
from core.settings import Settings
from keystore.principal import Principal
from limits.plans import Plan
from localdev.server import build_app
from localdev.stack import LocalStack
from usage.records import UsageRecord

App = Callable[[dict[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]
VARIANTS = ("floor", "liutong", "no usage record", "no limits", "neither")


@dataclass
class Tally:
    statuses: dict[int, int] = field(default_factory=dict)


def request_scope(key: str | None, body_length: int) -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
               (b"content-length", str(body_length).encode())]
    if key is not None:
        headers.append((b"authorization", f"Bearer {key}".encode()))
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": CHAT, "raw_path": CHAT.encode(), "query_string": b"", "root_path": "", "headers": headers,
        "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 7071),
    }


async def call(app: App, key: str | None, body: bytes, tally: Tally) -> None:
    """One POST through the app's ASGI interface; the answer's status is counted, its body dropped."""
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the caller never disconnects
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            tally.statuses[message["status"]] = tally.statuses.get(message["status"], 0) + 1

    await app(request_scope(key, len(body)), receive, send)


async def drive(app: App, key: str | None, calls: int, concurrency: int) -> Tally:
    body, tally = orjson.dumps(chat_body(stream=False)), Tally()

    async def worker(count: int) -> None:
        for _ in range(count):
            await call(app, key, body, tally)

    share, extra = divmod(calls, concurrency)
    await asyncio.gather(*(worker(share + (index < extra)) for index in range(concurrency)))
    return tally


@contextlib.asynccontextmanager
async def running(app: App) -> AsyncIterator[None]:
    """The app's ASGI lifespan: started on entry, shut down on exit."""
    inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"the app did not start: {started}")
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task


class OpenAdmission:
    headers: dict[str, str] = {}

    async def settle(self, *, plan_tokens: int) -> None:
        return None

    async def refund(self) -> None:
        return None


async def admit_everything(principal: Principal, plan: Plan, *, model_alias: str, estimated_plan_tokens: int) -> Any:
    return OpenAdmission()


async def record_nothing(record: UsageRecord) -> None:
    return None


@contextlib.contextmanager
def switched_off(built: services.Services, variant: str) -> Iterator[None]:
    """The variant's features replaced on the worker's built services (instance attributes), then restored."""
    patches: dict[Any, tuple[str, Any]] = {}
    if variant in ("no usage record", "neither"):
        patches[built.usage] = ("record", record_nothing)
    if variant in ("no limits", "neither"):
        patches[built.limiter] = ("admit", admit_everything)
    for target, (name, replacement) in patches.items():
        setattr(target, name, replacement)
    try:
        yield
    finally:
        for target, (name, _) in patches.items():
            delattr(target, name)


async def measure(floor: App, liutong: App, key: str, args: argparse.Namespace) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    async with running(floor), running(liutong):
        leg = (liutong, await services.get_services())  # the services the Liutong app's lifespan built
        for variant in VARIANTS:  # warm-up: pools, caches, the first partition of the usage table
            await one_variant(floor, leg, key, variant, max(200, args.calls // 10), args.concurrency)
        for round_number in range(1, args.rounds + 1):
            for variant in VARIANTS:
                await asyncio.sleep(0.5)  # let the usage writer's last transaction finish outside the window
                cpu, calls_per_second = await one_variant(floor, leg, key, variant, args.calls, args.concurrency)
                samples[variant].append(cpu)
                say(f"round {round_number}/{args.rounds} {variant:16s} {cpu:7.1f} µs CPU/call "
                    f"{calls_per_second:7.0f} calls/s")
    return samples


async def one_variant(
    floor: App, liutong: tuple[App, services.Services], key: str, variant: str, calls: int, concurrency: int
) -> tuple[float, float]:
    """CPU µs per call of this process, and calls per second."""
    app, caller_key = (floor, None) if variant == "floor" else (liutong[0], key)
    with switched_off(liutong[1], variant) if variant != "floor" else contextlib.nullcontext():
        cpu, wall = time.process_time(), time.perf_counter()
        tally = await drive(app, caller_key, calls, concurrency)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    answered = tally.statuses.get(200, 0)
    if answered != calls:
        raise RuntimeError(f"{variant}: not every call answered 200: {tally.statuses}")
    return cpu / calls * 1e6, calls / wall


def report(samples: dict[str, list[float]], rounds: int) -> None:
    median = {variant: statistics.median(values) for variant, values in samples.items()}
    floor, whole = median["floor"], median["liutong"]
    print(f"\nCPU µs per non-streamed call, in process (median of {rounds} rounds; min-max beside)")
    print(f"  {'variant':18s} {'µs/call':>8s} {'range':>15s} {'x floor':>8s} {'saves':>8s}")
    for variant in VARIANTS:
        low, high = min(samples[variant]), max(samples[variant])
        saves = "" if variant in ("floor", "liutong") else f"{whole - median[variant]:8.1f}"
        print(f"  {variant:18s} {median[variant]:8.1f} {low:7.1f}-{high:<7.1f} {median[variant] / floor:8.2f} {saves}")
    print(f"  Liutong's own code: {whole - floor:.1f} µs per call; without usage record and limits "
          f"{median['neither'] - floor:.1f} µs (auth, parsing, routing, the answer's usage, headers)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20000, help="calls per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency-ms", type=float, default=5, help="the mock upstream's latency")
    args = parser.parse_args(argv)
    proxy_cores, load_cores = split_cores()
    work = Path(tempfile.mkdtemp(prefix="liutong-budget-"))
    processes, stack = Processes(work), LocalStack()
    with signals_as_interrupts():
        try:
            mock = start_mock(processes, args.latency_ms)
            settings = liutong_settings(stack, mock.base_url, work)
            key = uvloop.run(seed_key(settings))
            os.environ.update(service_environ(stack, settings))
            for pid in (mock.pid, stack.azurite_process.pid if stack.azurite_process else None):
                if pid is not None:
                    pin_group(pid, load_cores)
            pin_process(os.getpid(), proxy_cores)
            say(f"this process (floor and Liutong): {where(os.getpid())}; mock: {where(mock.pid or 0)}")
            samples = uvloop.run(measure(build_floor(mock.base_url), build_app(Settings()), key, args))
        finally:
            processes.stop_all()
            stack.stop()
    report(samples, args.rounds)


if __name__ == "__main__":
    main()
