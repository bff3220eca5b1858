"""A light streaming upstream for bench.streams: long SSE chat streams on plain asyncio, no web framework.

Each POST gets `HTTP/1.1 200` with chunked SSE: a chat completion chunk every `interval` seconds for `duration`
seconds (each scheduled from the stream's start, so lateness does not accumulate), then the usage chunk and
[DONE]. One process serves thousands of streams at a few microseconds per chunk, so at N streams the load
side costs little beside the proxy under test.

    python -m bench.stream_mock --port 7090 --interval 0.05 --duration 30
"""

from __future__ import annotations

import argparse
import asyncio
import json

_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
    b"cache-control: no-cache\r\n\r\n"
)


def _chunked(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def _event(body: dict[str, object]) -> bytes:
    return _chunked(b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n")


def stream_events(count: int) -> tuple[bytes, bytes, bytes]:
    """The first event, each word event, and the end (usage, [DONE], the last chunk)."""
    head = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1735689600, "model": "mock-model"}
    first = _event({**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
    word = _event({**head, "choices": [{"index": 0, "delta": {"content": " word"}, "finish_reason": None}]})
    usage = {"prompt_tokens": 8, "completion_tokens": count, "total_tokens": 8 + count}
    end = _event({**head, "choices": [], "usage": usage}) + _chunked(b"data: [DONE]\n\n") + b"0\r\n\r\n"
    return first, word, end


class StreamProtocol(asyncio.Protocol):
    def __init__(self, interval: float, count: int) -> None:
        self._interval = interval
        self._count = count
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._word = self._end = b""
        self._left = self._count_sent = 0
        self._start_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        length = 0
        for line in self._buffer[:end].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(self._buffer) < end + 4 + length:
            return
        body = json.loads(self._buffer[end + 4 : end + 4 + length] or b"{}")
        self._buffer = b""
        limit = body.get("max_tokens")
        count = min(self._count, limit) if isinstance(limit, int) and limit > 0 else self._count
        if body.get("stream") is True:
            self._start(count)
        else:  # the benchmark's readiness probes: a plain answer at once
            self._answer(count)

    def _answer(self, count: int) -> None:
        assert self._transport is not None
        message = {"role": "assistant", "content": " word" * count}
        usage = {"prompt_tokens": 8, "completion_tokens": count, "total_tokens": 8 + count}
        answer = json.dumps({"id": "chatcmpl-bench", "object": "chat.completion", "created": 1735689600,
                             "model": "mock-model", "choices": [{"index": 0, "message": message,
                             "finish_reason": "stop"}], "usage": usage}).encode()
        self._transport.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                              b"connection: close\r\n\r\n%s" % (len(answer), answer))
        self._transport.close()

    def _start(self, count: int) -> None:
        transport = self._transport
        assert transport is not None
        first, self._word, self._end = stream_events(count)
        transport.write(_HEAD + first)
        self._left = count
        self._start_at = asyncio.get_running_loop().time()
        self._schedule()

    def _schedule(self) -> None:
        number = self._count_sent + 1
        loop = asyncio.get_running_loop()
        self._handle = loop.call_at(self._start_at + number * self._interval, self._send)

    def _send(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        self._count_sent += 1
        self._left -= 1
        if self._left > 0:
            transport.write(self._word)
            self._schedule()
        else:
            transport.write(self._word + self._end)
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._transport = None


async def serve(host: str, port: int, interval: float, duration: float) -> None:
    count = max(1, round(duration / interval))
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: StreamProtocol(interval, count), host, port, backlog=4096)
    print(f"stream mock on http://{host}:{port} ({count} chunks every {interval * 1000:g} ms)", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--duration", type=float, default=30)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.interval, args.duration))


if __name__ == "__main__":
    main()
