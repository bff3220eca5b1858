"""MarketplaceClient against the stand-in: batching, per-event results, transient failures, real tokens."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from azure.identity.aio import ManagedIdentityCredential

from core.settings import Settings
from localdev.standin import RunningStandin, start_in_thread
from localdev.standin.metering import MeteringStandin, metering_of
from metering.marketplace_client import (
    SCOPE,
    MarketplaceClient,
    Outcome,
    UsageEvent,
    metering_credential,
)
from tests.metering.submit_support import DIMENSION, PAYG, StandinCredential

NOW = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
HOUR = datetime(2026, 3, 1, 11, tzinfo=UTC)


@pytest.fixture
def standin() -> Iterator[RunningStandin]:
    with start_in_thread() as running:
        metering_of(running.state).clock = lambda: NOW
        yield running


@pytest.fixture
def metering(standin: RunningStandin) -> MeteringStandin:
    return metering_of(standin.state)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def client_for(standin: RunningStandin, http: httpx.AsyncClient, **options: float) -> MarketplaceClient:
    return MarketplaceClient(http=http, credential=StandinCredential(standin), endpoint=standin.base_url, **options)


def registered(metering: MeteringStandin, count: int = 1) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    for resource_id in ids:
        metering.register_resource(resource_id, PAYG, [DIMENSION])
    return ids


def usage_event(
    resource_id: str, quantity: str = "1.345", *, hour: datetime = HOUR, dimension: str = DIMENSION
) -> UsageEvent:
    return UsageEvent(resource_id, dimension, hour, Decimal(quantity), PAYG)


async def test_batches_hold_at_most_25_events(
    standin: RunningStandin, metering: MeteringStandin, http: httpx.AsyncClient
) -> None:
    events = [usage_event(r) for r in registered(metering, 60)]
    results = await client_for(standin, http).submit(events)
    assert [call["events"] for call in metering.calls] == [25, 25, 10]
    assert [r.outcome for r in results] == [Outcome.ACCEPTED] * 60
    assert all(uuid.UUID(r.usage_event_id or "") for r in results)
    assert metering.total_quantity(events[0].resource_id, DIMENSION) == Decimal("1.345")


async def test_per_event_outcomes(standin: RunningStandin, metering: MeteringStandin, http: httpx.AsyncClient) -> None:
    mine, other = registered(metering, 2)
    metering.evaluate(usage_event(other, "9").body())
    events = [
        usage_event(mine),
        usage_event(other, "1.345"),
        usage_event(mine, hour=HOUR - timedelta(hours=30)),
        usage_event(str(uuid.uuid4())),
        usage_event(mine, dimension="nope"),
    ]
    results = await client_for(standin, http).submit(events)
    assert [r.outcome for r in results] == [
        Outcome.ACCEPTED,
        Outcome.DUPLICATE,
        Outcome.EXPIRED,
        Outcome.ERROR,
        Outcome.ERROR,
    ]
    duplicate = results[1]
    assert duplicate.accepted_quantity == Decimal("9") and duplicate.usage_event_id
    assert results[3].status == "ResourceNotFound" and "cannot be found" in (results[3].error or "")
    assert results[4].status == "InvalidDimension" and "dimension is invalid" in (results[4].error or "")


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_throttling_and_server_errors_are_retried(
    standin: RunningStandin, metering: MeteringStandin, http: httpx.AsyncClient, status: int
) -> None:
    metering.fail_next(1, status=status)
    results = await client_for(standin, http).submit([usage_event(r) for r in registered(metering, 2)])
    assert {r.outcome for r in results} == {Outcome.RETRY}
    assert results[0].status == str(status)


async def test_timeouts_are_retried(
    standin: RunningStandin, metering: MeteringStandin, http: httpx.AsyncClient
) -> None:
    metering.fail_next(1, status=500, after_commit=True, delay=1.0)
    results = await client_for(standin, http, timeout=0.2).submit([usage_event(registered(metering)[0])])
    assert results[0].outcome is Outcome.RETRY and results[0].status == "ReadTimeout"


async def test_a_token_for_another_audience_is_refused(
    standin: RunningStandin, metering: MeteringStandin, http: httpx.AsyncClient
) -> None:
    client = MarketplaceClient(
        http=http, credential=StandinCredential(standin, "https://management.azure.com/"), endpoint=standin.base_url
    )
    results = await client.submit([usage_event(registered(metering)[0])])
    assert results[0].outcome is Outcome.RETRY and results[0].status == "403"
    assert metering.accepted_events() == []


async def test_managed_identity_token_path(
    standin: RunningStandin, metering: MeteringStandin, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in standin.environ().items():
        monkeypatch.setenv(name, value)
    async with ManagedIdentityCredential() as credential:
        token = await credential.get_token(SCOPE)
        service = await metering_credential(Settings(_env_file=None), service=credential)  # type: ignore[call-arg]
        assert service is credential
        client = MarketplaceClient(http=http, credential=service, endpoint=standin.base_url)
        results = await client.submit([usage_event(registered(metering)[0])])
    assert token.token and results[0].outcome is Outcome.ACCEPTED


def test_event_body_is_the_documented_shape() -> None:
    event = UsageEvent("R", DIMENSION, datetime(2026, 3, 1, 10, tzinfo=UTC), Decimal("1.000001"), PAYG)
    assert event.body() == {
        "resourceId": "R",
        "quantity": 1.000001,
        "dimension": DIMENSION,
        "effectiveStartTime": "2026-03-01T10:00:00Z",
        "planId": PAYG,
    }
