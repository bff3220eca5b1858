"""MeteredStreamingResponse on its own: ASGI messages, a caller that leaves, a server that cancels."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from proxy.streaming import MeteredStreamingResponse

SCOPE = {"type": "http", "asgi": {"spec_version": "2.3"}}


class FakeRelay:
    """Yields `chunks`, then waits `stall` seconds before each further one; remembers how it ended."""

    def __init__(self, chunks: list[bytes], *, stall: float = 0.0) -> None:
        self._chunks = chunks
        self._stall = stall
        self.done_calls = 0
        self.body_closed = asyncio.Event()
        self.yielded = 0

    async def body(self) -> AsyncIterator[bytes]:
        try:
            for chunk in self._chunks:
                if self.yielded and self._stall:
                    await asyncio.sleep(self._stall)
                self.yielded += 1
                yield chunk
        finally:
            self.body_closed.set()

    def caller_done(self) -> None:
        self.done_calls += 1


def respond(relay: FakeRelay) -> MeteredStreamingResponse:
    return MeteredStreamingResponse(relay, headers={"x-request-id": "r1"})  # type: ignore[arg-type]


async def never_disconnects() -> dict[str, Any]:
    await asyncio.sleep(3600)
    raise AssertionError("unreachable")


async def test_streams_every_chunk_then_ends_and_tells_the_relay() -> None:
    relay = FakeRelay([b"data: 1\n\n", b"data: 2\n\n"])
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await respond(relay)(SCOPE, never_disconnects, send)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert (b"content-type", b"text/event-stream; charset=utf-8") in sent[0]["headers"]
    assert [m.get("body") for m in sent[1:]] == [b"data: 1\n\n", b"data: 2\n\n", b""]
    assert [m.get("more_body") for m in sent[1:]] == [True, True, False]
    assert relay.done_calls == 1


async def test_a_disconnect_stops_a_stalled_stream_at_once_without_raising() -> None:
    relay = FakeRelay([b"data: 1\n\n", b"data: 2\n\n"], stall=30)
    first_sent = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message.get("body"):
            first_sent.set()

    async def receive() -> dict[str, Any]:
        await first_sent.wait()
        return {"type": "http.disconnect"}

    await asyncio.wait_for(respond(relay)(SCOPE, receive, send), timeout=5)
    assert relay.yielded == 1 and relay.body_closed.is_set() and relay.done_calls == 1


async def test_other_messages_before_the_disconnect_are_ignored() -> None:
    relay = FakeRelay([b"data: 1\n\n", b"data: 2\n\n"], stall=30)
    messages = iter([{"type": "http.request", "body": b"", "more_body": False}, {"type": "http.disconnect"}])

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        return None

    await asyncio.wait_for(respond(relay)(SCOPE, receive, send), timeout=5)
    assert relay.yielded == 1 and relay.done_calls == 1


async def test_a_cancellation_from_the_server_still_propagates() -> None:
    relay = FakeRelay([b"data: 1\n\n", b"data: 2\n\n"], stall=30)

    async def send(message: dict[str, Any]) -> None:
        return None

    task = asyncio.get_running_loop().create_task(respond(relay)(SCOPE, never_disconnects, send))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert relay.done_calls == 1 and relay.body_closed.is_set()


async def test_a_disconnect_after_the_end_changes_nothing() -> None:
    relay = FakeRelay([b"data: 1\n\n"])
    ended = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message.get("more_body") is False:
            ended.set()
            await asyncio.sleep(0)  # the disconnect lands while the response is finishing

    async def receive() -> dict[str, Any]:
        await ended.wait()
        return {"type": "http.disconnect"}

    await respond(relay)(SCOPE, receive, send)
    await asyncio.sleep(0.05)  # a late disconnect callback must not cancel whatever this task does next
    assert relay.done_calls == 1
