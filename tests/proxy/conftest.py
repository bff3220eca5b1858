"""The proxy's handlers under uvicorn on loopback, in front of the mock upstream on loopback.

Both run in daemon threads with their own event loops, so every call crosses real HTTP twice: the
openai SDK → the proxy → aiohttp → the mock upstream. The collaborators that others build (principal
resolver, limiter, usage sink, credentials) are small recording fakes.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
import uvicorn
from openai import AsyncOpenAI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.clock import utc_now
from core.settings import Settings
from limits.plans import Plan
from localdev.mock_upstream import MockConfig, RunningMockUpstream, start_in_thread
from localdev.standin.server import base_url_of, bind
from proxy import handlers
from proxy.forwarding import UpstreamClient
from proxy.registry import UpstreamRegistry
from proxy.service import ProxyService
from proxy.upstreams import UpstreamsConfig
from routes import ROUTES
from tests.proxy.fakes import CALLER_KEY, FakeCredential, FakeResolver, FakeSecrets, RecordingLimiter, RecordingSink

UPSTREAM_SECRET = "sk-upstream-secret-kept-in-key-vault-0123456789"
IN_PLAN = ("mock-chat", "mock-embed", "mock-slow", "mock-down", "mock-kv", "mock-azure", "mock-org")
PLAN = Plan(plan_id="test-plan", models=IN_PLAN, rates={"mock-embed": 0.5})


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def upstreams_config(base_url: str, extra: dict[str, Any] | None = None) -> UpstreamsConfig:
    def openai(model: str = "mock-model", **extra: Any) -> dict[str, Any]:
        return {"kind": "openai", "base_url": f"{base_url}/v1", "model": model, **extra}

    return UpstreamsConfig.model_validate({"models": {
        "mock-chat": openai(),
        "mock-unlisted": openai(),
        "mock-embed": openai("mock-embedding"),
        "mock-slow": openai(timeouts={"read_seconds": 0.5}),
        "mock-down": {**openai(), "base_url": f"http://127.0.0.1:{closed_port()}/v1"},
        "mock-kv": openai(credential={"type": "key_vault_secret", "secret_name": "upstream-key"}),
        "mock-org": openai(organization="org-liutong", project="proj-liutong"),
        "mock-azure": {"kind": "azure_openai", "endpoint": base_url, "deployment": "dep-chat",
                       "api_version": "2024-10-21"},
        **{alias: {"base_url": f"{base_url}/v1", **entry} for alias, entry in (extra or {}).items()},
    }})


@dataclass
class Holder:
    client: UpstreamClient = field(default_factory=UpstreamClient)
    service: ProxyService | None = None
    current_service: Callable[[], Awaitable[ProxyService]] | None = None


@dataclass
class Harness:
    base_url: str
    upstream: RunningMockUpstream
    service: ProxyService
    limiter: RecordingLimiter
    sink: RecordingSink
    credential: FakeCredential
    secrets: FakeSecrets

    @property
    def mock(self) -> MockConfig:
        return self.upstream.config

    def openai(self, api_key: str = CALLER_KEY, **kwargs: Any) -> AsyncOpenAI:
        return AsyncOpenAI(api_key=api_key, base_url=f"{self.base_url}/v1", max_retries=0, **kwargs)


def _serve(app: Starlette) -> tuple[str, Callable[[], None]]:
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="proxy", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the proxy did not start"
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(10)

    return base_url_of(sock), stop


def _late_bound(name: str) -> Callable[[Request], Awaitable[Response]]:
    """The handler as handlers.<name> at call time (tests monkeypatch what the handlers look up)."""

    async def call(request: Request) -> Response:
        handler: Callable[[Request], Awaitable[Response]] = getattr(handlers, name)
        return await handler(request)

    return call


@pytest.fixture(scope="session")
def upstream() -> Iterator[RunningMockUpstream]:
    with start_in_thread() as running:
        yield running


@pytest.fixture(scope="session")
def proxy_server() -> Iterator[tuple[str, Holder]]:
    holder = Holder()

    async def current_service() -> ProxyService:
        assert holder.service is not None
        return holder.service

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await holder.client.close()  # the one pooled session is closed in the loop that made it

    app = Starlette(
        # Every OpenAI route of the one route table (not /v1/usage, which needs the whole stack).
        routes=[
            Route(spec.path, _late_bound(spec.handler.__name__), methods=list(spec.methods))
            for spec in ROUTES if spec.route.startswith("v1/") and spec.route != "v1/usage"
        ],
        lifespan=lifespan,
    )
    holder.current_service = current_service
    base_url, stop = _serve(app)
    try:
        yield base_url, holder
    finally:
        stop()


@pytest.fixture
def make_proxy(
    proxy_server: tuple[str, Holder], upstream: RunningMockUpstream, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Harness]]:
    base_url, holder = proxy_server
    # Per test, so the real handlers serve the real services again outside these tests.
    monkeypatch.setattr(handlers, "get_proxy_service", holder.current_service)
    upstream.mock.config = MockConfig(created=1735689600)
    upstream.received.clear()

    def build(
        *, plans: tuple[Plan, ...] = (PLAN,), models: dict[str, Any] | None = None,
        clock: Callable[[], datetime] = utc_now, **setting_overrides: Any,
    ) -> Harness:
        """plans: what the service knows (the caller's principal has plan "test-plan"); models: more upstream
        aliases, each an upstreams-file entry ("kind" and "model" needed; base_url defaults to the mock's)."""
        config = upstreams_config(upstream.base_url, models)
        values: dict[str, Any] = {"proxy_max_body_bytes": 64 * 1024, "stream_drain_max_seconds": 10}
        settings = Settings(_env_file=None, **{**values, **setting_overrides})  # type: ignore[call-arg]
        credential, secrets = FakeCredential(), FakeSecrets({"upstream-key": UPSTREAM_SECRET})
        registry = UpstreamRegistry(config, settings=settings, credential=credential, secrets=secrets)
        limiter, sink = RecordingLimiter(), RecordingSink()
        holder.service = ProxyService(
            resolver=FakeResolver(), plans={plan.plan_id: plan for plan in plans}.get, limiter=limiter, usage=sink,
            upstreams=registry, settings=settings, client=holder.client, clock=clock,
        )
        return Harness(base_url, upstream, holder.service, limiter, sink, credential, secrets)

    yield build
    holder.service = None


@pytest.fixture
def proxy(make_proxy: Callable[..., Harness]) -> Harness:
    return make_proxy()
