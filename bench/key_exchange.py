"""Benchmark: key exchange (JWKS cached) and hash → key-record lookup, against an Azurite point read.

Every figure is printed beside a baseline measured in the same run on the same machine (these
machines are shared and noisy): one Azurite point read through azure-data-tables.

    .venv/bin/python -m bench.key_exchange [--rounds 300]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import httpx

from core.tables import Tables
from keystore.repository import KeyRepository
from localdev import clients
from localdev.stack import API_APP_ID_URI, LocalStack, Ports

SUBSCRIPTION = "/subscriptions/00000000-0000-0000-0000-0000000000bb"
APP = f"{SUBSCRIPTION}/resourceGroups/bench/providers/Microsoft.Solutions/applications/bench"
PLAN = {"publisher": "liutong", "product": "liutong-llm", "name": "standard", "version": "1.0.0"}


async def timed(action: Callable[[], Awaitable[object]], rounds: int) -> list[float]:
    for _ in range(max(10, rounds // 10)):
        await action()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        await action()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def percentile(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


async def prepare(stack: LocalStack, http: httpx.AsyncClient) -> tuple[str, str]:
    assert stack.standin is not None
    document = await clients.register_application(
        stack.standin.base_url, APP, plan=PLAN,
        managed_resource_group_id=f"{SUBSCRIPTION}/resourceGroups/mrg",
    )
    usage = document["properties"]["billingDetails"]["resourceUsageId"]
    for state, when in (("Accepted", "2026-01-01T00:00:00Z"), ("Succeeded", "2026-01-01T00:05:00Z")):
        payload = clients.notification(APP, "PUT", state, when, plan=PLAN, usage_id=usage)
        (await http.post(f"/api/marketplace/resource?sig={stack.webhook_secret}", json=payload)).raise_for_status()
    token = await clients.managed_app_token(APP, API_APP_ID_URI)
    return token, await exchange_key(http, token)


async def exchange_key(http: httpx.AsyncClient, token: str) -> str:
    response = await http.post(
        "/api/provisioning/key", json={"application_id": APP}, headers={"authorization": f"Bearer {token}"}
    )
    response.raise_for_status()
    key: str = response.json()["key"]
    return key


async def run(rounds: int) -> None:
    stack = LocalStack(ports=Ports.free())
    stack.start()
    tables = Tables(stack.settings())
    try:
        async with httpx.AsyncClient(base_url=stack.service_url, timeout=30) as http:
            token, key = await prepare(stack, http)
            repository = KeyRepository(tables)
            deployments = tables.table("deployments")
            some = await anext(aiter(deployments.list_entities()))

            async def point_read() -> None:
                await deployments.get_entity(some["PartitionKey"], some["RowKey"])

            async def lookup() -> None:
                assert await repository.find(key) is not None

            async def exchange() -> None:
                await exchange_key(http, token)

            results = {
                "azurite point read (baseline)": await timed(point_read, rounds),
                "key lookup hash -> record": await timed(lookup, rounds),
                "key exchange over HTTP": await timed(exchange, rounds),
            }
        report(results, rounds)
    finally:
        await tables.close()
        stack.stop()


def report(results: dict[str, list[float]], rounds: int) -> None:
    baseline = statistics.median(results["azurite point read (baseline)"])
    print(f"{rounds} rounds each, sequential, loopback; ratios are against the baseline's p50")
    print(f"{'measure':34} {'p50 ms':>8} {'p99 ms':>8} {'p50/base':>9} {'p99/base':>9}")
    for name, samples in results.items():
        p50, p99 = statistics.median(samples), percentile(samples, 99)
        print(f"{name:34} {p50:8.2f} {p99:8.2f} {p50 / baseline:9.2f} {p99 / baseline:9.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=300)
    asyncio.run(run(parser.parse_args().rounds))


if __name__ == "__main__":
    main()
