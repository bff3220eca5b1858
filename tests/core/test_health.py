"""Health and storage outages, through the real route table against a real Azurite we can stop."""

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

import services
from core.settings import Settings
from localdev import azurite
from routes import ROUTES
from tests.provisioning.events import notification


@pytest.fixture
async def outage_client(make_settings: Callable[..., Settings]) -> AsyncIterator[tuple[httpx.AsyncClient, object]]:
    port = azurite.free_port()
    process = azurite.start_azurite(port=port)
    settings = make_settings(storage_connection_string=azurite.connection_string("127.0.0.1", port))
    built = await services.Services.create(settings, table_options={"retry_total": 0})
    previous = services._current
    services.install(built)
    app = Starlette(routes=[Route(r.path, r.handler, methods=list(r.methods)) for r in ROUTES])
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service") as client:
            yield client, process
    finally:
        services.install(previous)
        await built.close()
        azurite.stop(process)


async def test_health_is_200_then_503_when_storage_goes_away(outage_client: tuple[httpx.AsyncClient, object]) -> None:
    client, process = outage_client
    healthy = await client.get("/api/health")
    assert healthy.status_code == 200 and healthy.json()["storage"] == "ok"
    azurite.stop(process)  # type: ignore[arg-type]
    down = await client.get("/api/health")
    assert down.status_code == 503 and down.json()["storage"] == "unreachable"


async def test_webhook_answers_503_so_arm_retries_when_storage_is_down(
    outage_client: tuple[httpx.AsyncClient, object],
) -> None:
    client, process = outage_client
    azurite.stop(process)  # type: ignore[arg-type]
    response = await client.post("/api/marketplace/resource?sig=test-webhook-secret", json=notification())
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "storage_unavailable"
