"""Two service processes on one Azurite share a key's RPM: together they admit one instance's limit plus at most
one lease slice each (limits.leases), where per-instance buckets alone would admit twice the limit."""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from localdev.azurite import REPO_ROOT, free_port
from localdev.serve import settings_environ
from localdev.stack import HOST, LocalStack
from tests.proxy.test_stack_limits import team_key

pytestmark = pytest.mark.e2e
MESSAGES = [{"role": "user", "content": "hi"}]
STARTER_RPM = 60  # config/plans.json


@pytest.fixture(scope="module")
def second_service(stack: LocalStack) -> Iterator[str]:
    """Another service process with the stack's settings: the same Azurite, stand-in and mock upstream."""
    assert stack.standin is not None
    env = {name: value for name, value in os.environ.items() if not name.startswith("LIUTONG_")}
    env.update(settings_environ(stack.settings()))
    env.update(stack.standin.environ())
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "localdev.serve", "--host", HOST, "--port", str(port)],
        env=env, cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
    )
    url = f"http://{HOST}:{port}"
    try:
        wait_until_healthy(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def wait_until_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the second service exited with {process.returncode}"
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not become healthy")


async def test_two_service_processes_share_a_keys_rpm_within_the_bound(
    stack: LocalStack, second_service: str
) -> None:
    key = await team_key(stack, "starter")
    urls = (stack.service_url, second_service)
    statuses: list[list[int]] = [[], []]
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=30, headers={"authorization": f"Bearer {key}"}) as http:

        async def call(instance: int) -> None:
            response = await http.post(
                f"{urls[instance]}/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES}
            )
            statuses[instance].append(response.status_code)
            if response.status_code == 429:
                assert response.json()["error"]["code"] == "rate_limit_exceeded"

        for _ in range(20):  # rounds of 4 concurrent calls on each process: 160 calls in all
            await asyncio.gather(*(call(instance) for instance in (0, 1) for _ in range(4)))
    elapsed = time.monotonic() - started
    admitted = [codes.count(200) for codes in statuses]
    assert all(code in (200, 429) for codes in statuses for code in codes)
    assert min(admitted) > 0
    lease_slice = max(1, math.ceil(STARTER_RPM * stack.settings().rate_lease_fraction))
    # One instance alone: its full bucket plus what refilled meanwhile (1 a second). Per-instance buckets: 120+.
    assert STARTER_RPM - 2 * lease_slice <= sum(admitted) <= STARTER_RPM + math.ceil(elapsed) + 2 * lease_slice
