"""Table Storage goes away under load and comes back: every completed request's usage record arrives."""

import asyncio
import os
import signal
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

import services
from core.tables import Tables
from keystore import keys
from keystore.models import KeyRecord, KeyStatus
from keystore.repository import KeyRepository
from keystore.teams import Team, TeamStore
from localdev import azurite
from localdev.stack import HOST, LocalStack, Ports
from usage.store import RAW_ROWS

pytestmark = pytest.mark.e2e


@pytest.fixture
def outage_stack() -> Iterator[LocalStack]:
    """A stack of its own (its Azurite keeps data on disk), leaving the session stack as it was."""
    saved_env = {k: os.environ.get(k) for k in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER")}
    saved_services = services._current
    journal = tempfile.mkdtemp(prefix="liutong-journal-")
    stack = LocalStack(
        ports=Ports.free(), azurite_location=tempfile.mkdtemp(prefix="liutong-azurite-"),
        setting_overrides={"usage_journal_dir": journal, "usage_flush_interval_ms": 20},
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
        services.install(saved_services)
        for name, value in saved_env.items():
            if value is not None:
                os.environ[name] = value


async def seed_key(stack: LocalStack) -> tuple[str, str]:
    team, key = f"outage{uuid.uuid4().hex[:8]}", keys.generate_key()
    record = KeyRecord(
        key_hash=keys.hash_key(key), key_id=keys.random_key_id(), prefix=keys.display_prefix(key), team=team,
        description="outage test", status=KeyStatus.ACTIVE, created_at=datetime.now(UTC),
    )
    tables = Tables(stack.settings())
    try:
        await TeamStore(tables).put(Team(team=team, plan_id="internal-unlimited"))
        await KeyRepository(tables).insert(record)
    finally:
        await tables.close()
    return key, record.key_id


def stop_azurite_keeping_data(stack: LocalStack) -> None:
    # SIGINT lets Azurite write its on-disk state; SIGTERM can drop recent rows.
    assert stack.azurite_process is not None
    stack.azurite_process.send_signal(signal.SIGINT)
    stack.azurite_process.wait(timeout=30)


async def usage_count(stack: LocalStack, key_id: str) -> int:
    tables = Tables(stack.settings())
    try:
        return len([e async for e in tables.table("usage").query_entities(f"{RAW_ROWS} and key_id eq '{key_id}'")])
    finally:
        await tables.close()


async def test_usage_survives_a_storage_outage_under_load(outage_stack: LocalStack) -> None:
    stack = outage_stack
    key, key_id = await seed_key(stack)
    ok = 0

    async def burst(http: httpx.AsyncClient, count: int) -> None:
        nonlocal ok
        for _ in range(count):
            response = await http.post(
                "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            )
            ok += response.status_code == 200

    async with httpx.AsyncClient(base_url=stack.service_url, timeout=30) as http:
        await burst(http, 20)
        stop_azurite_keeping_data(stack)
        await burst(http, 30)  # the key is cached, so calls still succeed; their usage goes to the journal
        stack.azurite_process = azurite.start_azurite(HOST, stack.ports.azurite, location=stack.azurite_location)
        await burst(http, 20)
    assert ok == 70
    for _ in range(200):  # the writer replays its journal every few seconds
        if await usage_count(stack, key_id) >= ok:
            break
        await asyncio.sleep(0.1)
    assert await usage_count(stack, key_id) == ok
    writer = (await services.get_services()).usage
    assert writer.stats.spilled > 0 and writer.stats.replayed > 0  # the outage really was one
