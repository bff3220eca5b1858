"""proxy.read_watchdog: a stream's read timeout with one timer per period, and its hand-over from aiohttp."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from proxy.read_watchdog import ReadWatchdog, take_over_read_timeout


async def test_silence_fires_once_after_the_period() -> None:
    fired: list[float] = []
    started = time.monotonic()
    watchdog = ReadWatchdog(0.05, lambda: fired.append(time.monotonic() - started))
    await asyncio.sleep(0.2)
    assert len(fired) == 1 and 0.04 <= fired[0] < 0.2
    watchdog.stop()


async def test_reads_keep_it_quiet_with_one_timer_per_period(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    armed: list[float] = []
    real_call_at = loop.call_at

    def counting_call_at(when: float, callback: Any, *args: Any, **options: Any) -> asyncio.TimerHandle:
        if getattr(callback, "__self__", None).__class__ is ReadWatchdog:  # not asyncio.sleep's timers
            armed.append(when)
        return real_call_at(when, callback, *args, **options)

    monkeypatch.setattr(loop, "call_at", counting_call_at)
    fired: list[bool] = []
    watchdog = ReadWatchdog(0.1, lambda: fired.append(True))
    for _ in range(40):  # a read every 10 ms for 0.4 s: four periods
        await asyncio.sleep(0.01)
        watchdog.touch()
    watchdog.stop()
    assert not fired
    assert len(armed) <= 8  # about one per period (aiohttp's sock_read would have armed 40)


async def test_a_stopped_watchdog_never_fires() -> None:
    fired: list[bool] = []
    ReadWatchdog(0.02, lambda: fired.append(True)).stop()
    await asyncio.sleep(0.08)
    assert not fired


@pytest.fixture
async def stalling_upstream() -> AsyncIterator[str]:
    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: one\n\n")
        await asyncio.sleep(2)  # silent: longer than the client's read timeout
        await response.write(b"data: two\n\n")
        return response

    app = web.Application()
    app.router.add_post("/stream", stream)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/stream"
    finally:
        await runner.cleanup()


async def test_the_body_fails_after_the_read_timeout_once_the_watchdog_has_it(stalling_upstream: str) -> None:
    timeout = aiohttp.ClientTimeout(total=None, sock_read=0.3)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.post(stalling_upstream) as response:
        watchdog = take_over_read_timeout(response)
        assert watchdog is not None
        assert response.connection is not None and response.connection.protocol is not None
        assert response.connection.protocol.read_timeout is None  # aiohttp no longer re-arms per read
        assert await response.content.readany() == b"data: one\n\n"
        watchdog.touch()
        started = time.monotonic()
        with pytest.raises(aiohttp.SocketTimeoutError):
            await response.content.readany()
        assert 0.2 <= time.monotonic() - started < 1.5
        watchdog.stop()


async def test_no_read_timeout_means_no_watchdog(stalling_upstream: str) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session, \
            session.post(stalling_upstream) as response:
        assert take_over_read_timeout(response) is None
