"""Draining the usage writer when the process is asked to stop.

uvicorn (local server, containers): SIGTERM makes uvicorn stop accepting, finish in-flight requests
  and run the lifespan shutdown - call `await writer.close()` there, before `Tables.close()`. Do not
  install signal handlers: uvicorn owns SIGTERM.
Azure Functions host: there is no shutdown hook for app code. The Python worker does not handle the
  host's WorkerTerminate message (azure-functions-python-worker issue #1521; its SIGTERM handler,
  PR #1579, is unmerged), so the host kills the worker, and a scaled-in instance takes its temp
  directory with it. `drain_on_signals` (UsageWriter.install_signal_handlers) drains on a SIGTERM if
  one is delivered. Install it while function_app.py is imported (the worker imports it on its
  running loop, before it starts the HTTP-streaming extension's embedded uvicorn): that uvicorn then
  captures SIGTERM, drains its requests, restores this handler and re-raises, so records of requests
  still streaming are drained too. Otherwise a hard kill loses at most the window measured in
  usage/writer.py, and a journal survives only if LIUTONG_USAGE_JOURNAL_DIR does.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from types import FrameType
from typing import Any, Protocol

log = logging.getLogger(__name__)
_draining: set[asyncio.Task[None]] = set()


class Drainable(Protocol):
    async def close(self) -> None: ...


def drain_on_signals(writer: Drainable, signals: tuple[signal.Signals, ...] = (signal.SIGTERM,)) -> None:
    """On each signal: `await writer.close()`, then hand the signal to the handler installed before.

    Call from the main thread while the event loop runs.
    """
    loop = asyncio.get_running_loop()
    for sig in signals:
        previous = signal.getsignal(sig)

        def handler(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
            loop.call_soon_threadsafe(_start_drain, writer, signum, previous)

        signal.signal(sig, handler)


def _start_drain(writer: Drainable, signum: int, previous: Any) -> None:
    task = asyncio.ensure_future(_drain_then_pass_on(writer, signum, previous))
    _draining.add(task)
    task.add_done_callback(_draining.discard)


async def _drain_then_pass_on(writer: Drainable, signum: int, previous: Any) -> None:
    try:
        await writer.close()
    except Exception:
        log.exception("Draining usage records on signal %d failed.", signum)
    signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
    if callable(previous):
        previous(signum, None)
    elif previous == signal.SIG_DFL:
        signal.raise_signal(signum)
