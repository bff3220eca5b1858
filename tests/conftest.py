"""Shared fixtures: a real Azurite Table service for the session, isolated tables per test."""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from core.settings import Settings
from core.tables import Tables
from localdev import azurite
from localdev.stack import LocalStack, Ports, write_mock_upstreams
from tests.admin.stack_operator import operator_api


@pytest.fixture(scope="session")
def azurite_connection_string() -> Iterator[str]:
    port = azurite.free_port()
    process = azurite.start_azurite(port=port)
    try:
        yield azurite.connection_string("127.0.0.1", port)
    finally:
        azurite.stop(process)


@functools.cache
def _unreachable_upstreams() -> str:
    """Every plan alias pointed at a closed loopback port: services build, nothing is proxied."""
    return write_mock_upstreams("http://127.0.0.1:9")


@pytest.fixture
def table_prefix() -> str:
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def make_settings(azurite_connection_string: str, table_prefix: str) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "storage_connection_string": azurite_connection_string,
            "table_prefix": table_prefix,
            "webhook_secret": "test-webhook-secret",
            "master_secret": "test-master-secret-0123456789abcdef",
            "api_app_id_uri": "api://liutong-test",
            "api_client_id": "11111111-2222-3333-4444-555555555555",
            "upstreams_file": _unreachable_upstreams(),
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return build


@pytest.fixture
async def tables(make_settings: Callable[..., Settings]) -> AsyncIterator[Tables]:
    store = Tables(make_settings())
    await store.ensure_tables()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    """The whole service on loopback: Azurite, the Azure stand-in, the service under uvicorn."""
    overrides = {"jwks_min_refresh_seconds": 0, "principal_cache_ttl_seconds": 1, "usage_flush_interval_ms": 20}
    local = LocalStack(ports=Ports.free(), setting_overrides=overrides)
    local.start()
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture
async def admin(stack: LocalStack) -> AsyncIterator[httpx.AsyncClient]:
    """The stack's admin API, signed in as the automation app (client credentials at the Entra stand-in)."""
    async with operator_api(stack) as api:
        yield api


@pytest.fixture
async def service_http(stack: LocalStack) -> AsyncIterator[httpx.AsyncClient]:
    """Plain HTTP to the stack's service (webhook, key exchange, /v1)."""
    async with httpx.AsyncClient(base_url=stack.service_url, timeout=60) as http:
        yield http
