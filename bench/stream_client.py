"""The load side of bench.streams: N concurrent long SSE streams on plain asyncio, timed event by event.

Per stream: time to first token (request sent → first `data:` event) and, for every later event, its lateness
against the upstream's cadence (arrival - (first arrival + k * interval)): what the path added between chunks.
Prints one JSON line with the percentiles, so it runs in its own (pinned) process.

    python -m bench.stream_client --url http://127.0.0.1:7080/v1/chat/completions --streams 100 --interval 0.05
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

EVENT = b"data: "


@dataclass
class Timings:
    ttft_ms: list[float] = field(default_factory=list)
    lateness_ms: list[float] = field(default_factory=list)
    events: int = 0
    errors: int = 0


class StreamReader(asyncio.Protocol):
    def __init__(self, request: bytes, interval: float, timings: Timings, done: asyncio.Future[None]) -> None:
        self._request = request
        self._interval = interval
        self._timings = timings
        self._done = done
        self._sent = 0.0
        self._first = 0.0
        self._seen = 0
        self._status_checked = False
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._sent = time.perf_counter()
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if not self._status_checked:
            self._status_checked = True
            if not data.startswith(b"HTTP/1.1 200"):
                self._timings.errors += 1
        # An event marker split across two reads is found by looking at the last few bytes of the previous one.
        window = self._tail + data
        count = window.count(EVENT)
        self._tail = data[-(len(EVENT) - 1) :]
        for _ in range(count):
            if self._seen == 0:
                self._first = now
                self._timings.ttft_ms.append((now - self._sent) * 1000)
            else:
                expected = self._first + self._seen * self._interval
                self._timings.lateness_ms.append(max(0.0, now - expected) * 1000)
            self._seen += 1
        self._timings.events += count

    def connection_lost(self, exc: Exception | None) -> None:
        if self._seen == 0:
            self._timings.errors += 1
        if not self._done.done():
            self._done.set_result(None)


def request_bytes(url: str, key: str | None, max_tokens: int) -> bytes:
    parts = urlsplit(url)
    body = json.dumps({"model": "bench-chat", "messages": [{"role": "user", "content": "Stream to me."}],
                       "stream": True, "max_tokens": max_tokens}).encode()
    auth = f"authorization: Bearer {key}\r\n" if key else ""
    return (f"POST {parts.path} HTTP/1.1\r\nhost: {parts.netloc}\r\ncontent-type: application/json\r\n"
            f"{auth}content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body


async def run(url: str, key: str | None, streams: int, interval: float, chunks: int, ramp: float) -> Timings:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = request_bytes(url, key, chunks)
    timings = Timings()
    loop = asyncio.get_running_loop()

    async def one(delay: float) -> None:
        await asyncio.sleep(delay)
        done: asyncio.Future[None] = loop.create_future()
        try:
            transport, _ = await loop.create_connection(
                lambda: StreamReader(request, interval, timings, done), host, port)
        except OSError:
            timings.errors += 1
            return
        try:
            await asyncio.wait_for(done, timeout=chunks * interval + 120)
        except TimeoutError:
            timings.errors += 1
            transport.close()

    await asyncio.gather(*(one(ramp * n / streams) for n in range(streams)))
    return timings


def percentile(samples: list[float], q: float) -> float:
    if len(samples) < 2:
        return samples[0] if samples else float("nan")
    return statistics.quantiles(samples, n=1000, method="inclusive")[round(q * 10) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--key")
    parser.add_argument("--streams", type=int, required=True)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--chunks", type=int, default=600)
    parser.add_argument("--ramp", type=float, default=2.0, help="seconds over which the streams are opened")
    args = parser.parse_args()
    started = time.process_time()
    timings = asyncio.run(run(args.url, args.key, args.streams, args.interval, args.chunks, args.ramp))
    print(json.dumps({
        "streams": args.streams, "events": timings.events, "errors": timings.errors,
        "ttft_p50_ms": percentile(timings.ttft_ms, 50), "ttft_p99_ms": percentile(timings.ttft_ms, 99),
        "late_p50_ms": percentile(timings.lateness_ms, 50), "late_p99_ms": percentile(timings.lateness_ms, 99),
        "client_cpu_s": time.process_time() - started,
    }), flush=True)


if __name__ == "__main__":
    main()
