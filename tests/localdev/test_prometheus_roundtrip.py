"""Metrics locally: Debian's Prometheus scrapes the local service's /metrics, and its HTTP API gives back token
totals equal to the usage records of the same calls. `make test` installs prometheus (make prometheus); without
it this test fails, as the browser tests do without Chromium."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import openai
import pytest

import services
from core.tables import Tables
from keystore import keys
from keystore.models import KeyRecord, KeyStatus
from keystore.repository import KeyRepository
from keystore.teams import Team, TeamStore
from localdev import azurite
from localdev.stack import HOST, LocalStack, Ports
from tests.test_function_app import http_functions
from usage.store import RAW_ROWS

pytestmark = pytest.mark.e2e
PLAN = "internal-unlimited"
MESSAGES = [{"role": "user", "content": "count to three"}]


@pytest.fixture(scope="module")
def metrics_stack() -> Iterator[LocalStack]:
    """A stack of its own exporting to Prometheus, leaving the session stack as it was."""
    saved_env = {k: os.environ.get(k) for k in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER")}
    saved_services = services._current
    stack = LocalStack(ports=Ports.free(), setting_overrides={
        "metrics_exporter": "prometheus", "usage_flush_interval_ms": 20,
        "usage_journal_dir": tempfile.mkdtemp(prefix="liutong-journal-"),
    })
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
        services.install(saved_services)
        for name, value in saved_env.items():
            if value is not None:
                os.environ[name] = value


@pytest.fixture(scope="module")
def prometheus(metrics_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("prometheus")
    assert binary, "Debian's prometheus is not installed: run `make prometheus` (make test does)"
    work = tmp_path_factory.mktemp("prometheus")
    config = work / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: liutong\n    metrics_path: /metrics\n"
        f"    static_configs: [{{targets: ['{HOST}:{metrics_stack.ports.service}']}}]\n"
    )
    port = azurite.free_port()
    process = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={work / 'data'}",
         f"--web.listen-address={HOST}:{port}"],
        stdout=subprocess.DEVNULL, stderr=(work / "prometheus.log").open("wb"),
    )
    try:
        azurite.wait_for_port(HOST, port, timeout=30)
        yield f"http://{HOST}:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


async def seed_key(stack: LocalStack) -> tuple[str, str]:
    team, key = f"prom{uuid.uuid4().hex[:8]}", keys.generate_key()
    record = KeyRecord(
        key_hash=keys.hash_key(key), key_id=keys.random_key_id(), prefix=keys.display_prefix(key), team=team,
        description="prometheus round trip", status=KeyStatus.ACTIVE, created_at=datetime.now(UTC),
    )
    tables = Tables(stack.settings())
    try:
        await TeamStore(tables).put(Team(team=team, plan_id=PLAN))
        await KeyRepository(tables).insert(record)
    finally:
        await tables.close()
    return key, record.key_id


async def usage_totals(stack: LocalStack, key_id: str, expected_rows: int) -> dict[str, int]:
    tables = Tables(stack.settings())
    try:
        for _ in range(100):
            rows = [e async for e in tables.table("usage").query_entities(f"{RAW_ROWS} and key_id eq '{key_id}'")]
            if len(rows) >= expected_rows:
                break
            await asyncio.sleep(0.1)
    finally:
        await tables.close()
    assert len(rows) == expected_rows
    return {name: sum(int(row.get(f"{name}_tokens", 0)) for row in rows)
            for name in ("prompt", "cached", "completion", "reasoning", "total")}


async def query(client: httpx.AsyncClient, base: str, promql: str) -> float | None:
    body = (await client.get(f"{base}/api/v1/query", params={"query": promql})).json()
    assert body["status"] == "success", body
    result = body["data"]["result"]
    return float(result[0]["value"][1]) if result else None


async def test_prometheus_reads_back_the_token_totals_of_the_usage_records(
    metrics_stack: LocalStack, prometheus: str
) -> None:
    key, key_id = await seed_key(metrics_stack)
    async with openai.AsyncOpenAI(base_url=f"{metrics_stack.service_url}/v1", api_key=key, max_retries=0) as api:
        for _ in range(3):
            await api.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
        for _ in range(2):
            stream = await api.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True,  # type: ignore[arg-type]
            )
            async for _ in stream:
                pass
        await api.embeddings.create(model="text-embedding-3-small", input="hello")
    expected = await usage_totals(metrics_stack, key_id, 6)
    assert expected["total"] > 0

    selector = f'plan="{PLAN}"'
    seen: dict[str, float | None] = {}
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(60):  # scrapes every second
            for name in expected:
                seen[name] = await query(
                    client, prometheus, f'sum(liutong_tokens_total{{{selector},token_type="{name}"}})')
            seen["requests"] = await query(client, prometheus, f"sum(liutong_requests_total{{{selector}}})")
            seen["streams"] = await query(
                client, prometheus, 'sum(liutong_time_to_first_token_buckets_total{le="+Inf"})')
            if all(seen.get(name) == value for name, value in expected.items()) and seen["requests"] == 6:
                break
            await asyncio.sleep(1)
    assert {name: seen.get(name) for name in expected} == {name: float(value) for name, value in expected.items()}
    assert seen["requests"] == 6
    assert seen["streams"] == 2


async def test_metrics_are_served_by_the_local_host_only(metrics_stack: LocalStack) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{metrics_stack.service_url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert all("metrics" not in function.get_trigger().route for function in http_functions())


def test_the_make_target_installs_prometheus() -> None:
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    assert "unit: setup chromium prometheus" in makefile
    assert "apt-get install -y -qq --no-install-recommends prometheus" in makefile
