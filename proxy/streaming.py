"""A streamed call: upstream SSE relayed event by event, and accounted for however it ends.

Three ends, each recorded exactly once:
- complete: the upstream finished; its usage chunk is recorded before the caller's stream closes.
- caller gone: the caller disconnected; the upstream is read on (bounded by stream_drain_max_seconds)
  in a background task up to its usage chunk, so the call is billed in full.
- upstream broken: the caller gets `data: {"error": …}` and the end; usage is estimated from the
  chunks seen.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import aiohttp
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from core.errors import LiutongError, UpstreamTimeout, UpstreamUnavailable
from core.metrics import first_chunk_at
from proxy.forwarding import FAILURES
from proxy.read_watchdog import take_over_read_timeout
from proxy.upstream_errors import stream_error_event

Outcome = Literal["complete", "caller_gone", "upstream_broken"]


class UsageTap(Protocol):
    """Reads an upstream event stream as it passes (proxy.sse for chat, proxy.responses for Responses)."""

    usage: Mapping[str, Any] | None
    output_chars: int
    saw_done: bool  # the upstream's own end of stream (chat's [DONE], a Responses terminal event)

    @property
    def saw_output(self) -> bool: ...

    def feed(self, data: bytes) -> bytes:
        """The complete events in `data` (with what was pending) as the caller should see them."""
        ...


@dataclass(frozen=True)
class StreamEnd:
    outcome: Outcome
    usage: Mapping[str, Any] | None
    output_chars: int
    saw_output: bool


OnEnd = Callable[[StreamEnd], Awaitable[None]]


class StreamRelay:
    def __init__(
        self,
        response: aiohttp.ClientResponse,
        tap: UsageTap,
        *,
        on_end: OnEnd,
        drain_seconds: float,
        background: set[asyncio.Task[None]],
    ) -> None:
        self._response = response
        self._tap = tap
        self._on_end = on_end
        self._drain_seconds = drain_seconds
        self._background = background
        self._upstream_failed: LiutongError | None = None
        self._upstream_over = False
        self._ended = False
        self._first_chunk_at: float | None = None  # time.monotonic(), for the time-to-first-token metric
        self._watchdog = take_over_read_timeout(response)

    async def body(self) -> AsyncIterator[bytes]:
        # One generator for the relay and its end (not one wrapping another): every chunk passes through it.
        try:
            content, tap, watchdog = self._response.content, self._tap, self._watchdog
            try:
                while data := await content.readany():
                    if watchdog is not None:
                        watchdog.touch()
                    if out := tap.feed(data):
                        if self._first_chunk_at is None:
                            self._first_chunk_at = time.monotonic()
                        yield out
            except FAILURES as error:
                self._upstream_failed = _broken(error)
            if (failure := self._upstream_ended()) is not None:
                yield stream_error_event(failure)
            end = self._claim_end()
            if end is not None:
                # Shielded: a disconnect now must not cancel the record of a call that completed.
                await asyncio.shield(end)
        finally:
            # Abandoned (cancelled, or closed by a host that stopped iterating): account in the background.
            self._claim_end()

    def _upstream_ended(self) -> LiutongError | None:
        """The upstream's side is over: how it failed, if it did (no end of stream and no usage is a failure)."""
        self._upstream_over = True
        if self._upstream_failed is None and not (self._tap.saw_done or self._tap.usage is not None):
            self._upstream_failed = _broken(None)
        return self._upstream_failed

    def caller_done(self) -> None:
        """The response is over for the caller, whatever the reason; finish the accounting if still open."""
        self._claim_end()

    def _claim_end(self) -> asyncio.Task[None] | None:
        if self._ended:
            return None
        self._ended = True
        task = asyncio.get_running_loop().create_task(self._finish())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _finish(self) -> None:
        caller_gone = not self._upstream_over
        if caller_gone:
            await self._drain()
        self._release()
        outcome: Outcome = "complete"
        if caller_gone:
            outcome = "caller_gone"
        elif self._upstream_failed is not None:
            outcome = "upstream_broken"
        tap = self._tap
        first_chunk_at.set(self._first_chunk_at)  # this task's own context: read by core.metrics_sinks
        await self._on_end(StreamEnd(outcome, tap.usage, tap.output_chars, tap.saw_output))

    async def _drain(self) -> None:
        content = self._response.content
        try:
            async with asyncio.timeout(self._drain_seconds):
                while data := await content.readany():
                    if self._watchdog is not None:
                        self._watchdog.touch()
                    self._tap.feed(data)
        except FAILURES:
            return
        self._upstream_over = True

    def _release(self) -> None:
        if self._watchdog is not None:
            self._watchdog.stop()
        if self._upstream_over and self._upstream_failed is None:
            self._response.release()  # read to the end: the connection goes back to the pool
        else:
            self._response.close()


def _broken(error: BaseException | None) -> LiutongError:
    if isinstance(error, TimeoutError):
        return UpstreamTimeout("The upstream model provider stopped sending the stream.")
    return UpstreamUnavailable("The upstream model provider ended the stream early.", code="upstream_stream_broken")


class MeteredStreamingResponse(StreamingResponse):
    """An SSE response that tells its relay when the caller's side is over, even on a disconnect.

    Starlette's StreamingResponse watches for the disconnect with an anyio task group per response (two
    tasks and a cancel scope); here one plain task waits for `http.disconnect` and cancels the streaming
    task, which costs less on a path every streamed call takes and ends the same way: at once.
    """

    def __init__(self, relay: StreamRelay, *, headers: Mapping[str, str]) -> None:
        super().__init__(relay.body(), headers=headers, media_type="text/event-stream")
        self._relay = relay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streaming = asyncio.current_task()
        watcher = asyncio.get_running_loop().create_task(_disconnect(receive))
        over = False

        def caller_gone(task: asyncio.Task[None]) -> None:
            if not over and not task.cancelled() and streaming is not None:
                streaming.cancel(_CALLER_GONE)

        watcher.add_done_callback(caller_gone)
        try:
            await self._stream(send)
        except asyncio.CancelledError as error:
            if error.args != (_CALLER_GONE,) or streaming is None:
                raise
            streaming.uncancel()
        finally:
            over = True
            watcher.cancel()
            self._relay.caller_done()

    async def _stream(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        async for chunk in self.body_iterator:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


_CALLER_GONE = "caller disconnected"


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
