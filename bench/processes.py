"""The benchmark's child processes: started in their own sessions, waited for, and always stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx

from bench.common import HOST, REPO_ROOT, LegUnavailable
from localdev.azurite import wait_for_port


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
        self._stop(list(self._running))

    def stop(self, *processes: subprocess.Popen[bytes]) -> None:
        """Stop some of the children (e.g. one leg's services) and forget them."""
        self._stop([entry for entry in self._running if entry[1] in processes])

    def _stop(self, entries: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]]) -> None:
        for _, process, _ in reversed(entries):
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for _, process, log in reversed(entries):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait(timeout=5)
            _signal_group(process, signal.SIGKILL)  # stragglers of the group (workers)
            log.close()
        self._running = [entry for entry in self._running if entry not in entries]


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)  # the group this script created for that child (start_new_session)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[None]:
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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


def wait_port_or_exit(port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    try:
        wait_for_port(HOST, port, timeout=timeout, process=process)
    except (RuntimeError, TimeoutError) as exc:
        raise LegUnavailable(str(exc)) from exc
