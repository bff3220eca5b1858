"""CPU pinning for the benchmarks: the proxy under test on one core (about the one vCPU a Flex Consumption
instance gets), everything else (load generator, mock upstream, Azurite, this script) on the others.

A process is pinned thread by thread (/proc/<pid>/task): sched_setaffinity on a pid alone moves only its main
thread, and a runtime such as Node's has started its threads by then. Threads started later inherit.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def cores() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def split_cores() -> tuple[set[int], set[int]]:
    """(the proxy's core, the rest); on a one-core machine both are that core (and the run says so)."""
    available = cores()
    proxy = {available[0]}
    rest = set(available[1:]) or proxy
    return proxy, rest


def pin_group(pgid: int, allowed: set[int]) -> list[int]:
    """Every thread of every process in the process group; returns the pids pinned."""
    pinned = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:  # state ppid pgrp …
                pin_process(int(stat.parent.name), allowed)
                pinned.append(int(stat.parent.name))
    return pinned


def pin_process(pid: int, allowed: set[int]) -> None:
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(task.name), allowed)


def where(pid: int) -> str:
    """The cores a process may run on and the one it last ran on, from /proc."""
    try:
        allowed = next(line.split(":", 1)[1].strip() for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                       if line.startswith("Cpus_allowed_list"))
        last = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[36]
    except (OSError, StopIteration, IndexError):
        return "gone"
    return f"cores {allowed} (last on {last})"


def rss_mb(pgid: int) -> float:
    """Resident memory of the process group, in MB."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError, StopIteration):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                status = (stat.parent / "status").read_text().splitlines()
                total += int(next(line.split()[1] for line in status if line.startswith("VmRSS")))
    return total / 1024
