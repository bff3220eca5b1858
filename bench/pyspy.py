"""`--profile`: py-spy on the Liutong process under wrk load, summarized by area and hottest frames."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from bench.common import REPO_ROOT, Target, say
from bench.load import run_wrk


def profile_liutong(wrk: str, target: Target, args: argparse.Namespace, out_dir: Path) -> None:
    """py-spy on the Liutong process while wrk loads it, non-streaming then streaming; prints the hottest functions."""
    py_spy = py_spy_path()
    if py_spy is None:
        say("--profile: py-spy is missing (`.venv/bin/pip install py-spy`); skipped")
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    for stream in (False, True):
        _profile_mode(py_spy, wrk, target, args, out_dir, stream=stream)


def _profile_mode(
    py_spy: str, wrk: str, target: Target, args: argparse.Namespace, out_dir: Path, *, stream: bool
) -> None:
    mode = "streaming" if stream else "non-streaming"
    raw = out_dir / f"liutong-py-spy-{mode}.txt"
    seconds = max(5, round(args.duration))
    spy = start_recording(py_spy, target.pid or 0, seconds + 2, raw)
    try:
        time.sleep(1)
        result = run_wrk(wrk, target, stream=stream, seconds=seconds, args=args)
    finally:
        recorded = finish_recording(spy, raw)
    if recorded:
        print(f"\nprofile of Liutong under {mode} load (py-spy, {result.rps:.0f} req/s while sampled): {raw}")
        print_profile(raw, args.profile_top)


def py_spy_path() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return found if Path(found).exists() else None


def start_recording(py_spy: str, pid: int, seconds: int, raw: Path) -> subprocess.Popen[str]:
    raw.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [py_spy, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "250",
         "--format", "raw", "--output", str(raw)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )


def finish_recording(spy: subprocess.Popen[str], raw: Path) -> bool:
    """Waits for py-spy; False (and says why) when it left no profile."""
    try:
        _, err = spy.communicate(timeout=120)
    finally:
        if spy.poll() is None:
            spy.terminate()
            spy.wait(timeout=10)
            err = "stopped"
    if spy.returncode != 0 or not raw.exists():
        say(f"--profile: py-spy failed ({spy.returncode}): {(err or '')[-400:]}")
        return False
    return True


# Leaf frames that mean "waiting", not working: idle thread-pool workers and the event loop's select.
_IDLE_LEAVES = ("_worker (concurrent/futures/thread.py:81)", "EpollSelector.select (selectors.py")
# Where the busy samples go, by a frame somewhere on the stack (first match wins, most specific first).
_AREAS = (
    ("upstream call (aiohttp client, proxy/forwarding)", ("UpstreamClient.", "read_all (proxy/forwarding")),
    ("stream relay + SSE usage tap (proxy/streaming, proxy/sse; the floor's _chunks)",
     ("StreamRelay.", "SseUsageTap.", "_chunks (bench/passthrough")),
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
