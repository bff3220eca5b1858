"""The stand-in's Marketplace Metering Service over HTTP: auth, documented bodies, batch results, faults."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from localdev.standin import RunningStandin, start_in_thread
from localdev.standin.metering import METERING_AUDIENCE, MeteringStandin, metering_of

PLAN = "payg"
DIMENSION = "tokens_1k"
NOW = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)


@pytest.fixture
def standin() -> Iterator[RunningStandin]:
    with start_in_thread() as running:
        yield running


@pytest.fixture
def metering(standin: RunningStandin) -> MeteringStandin:
    service = metering_of(standin.state)
    service.clock = lambda: NOW
    return service


@pytest.fixture
def resource(metering: MeteringStandin) -> str:
    resource_id = str(uuid.uuid4())
    metering.register_resource(resource_id, PLAN, [DIMENSION])
    return resource_id


def token(standin: RunningStandin, aud: str = METERING_AUDIENCE) -> str:
    config = standin.state.config
    return standin.state.mint_token(tid=config.publisher_tenant_id, oid=config.service_principal_id, aud=aud)


def event(
    resource_id: str, *, hour: datetime = NOW - timedelta(hours=2, minutes=30), quantity: float = 5.0, **over: Any
) -> dict[str, Any]:
    return {
        "resourceId": resource_id,
        "quantity": quantity,
        "dimension": DIMENSION,
        "effectiveStartTime": hour.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "planId": PLAN,
    } | over


def post(standin: RunningStandin, path: str, body: Any, *, bearer: str | None = None, **params: str) -> httpx.Response:
    headers = {"x-ms-requestid": "0f8fad5b-d9cb-469f-a165-70867728950e"}
    headers["authorization"] = f"Bearer {bearer if bearer is not None else token(standin)}"
    return httpx.post(
        f"{standin.base_url}/api/{path}",
        json=body,
        headers=headers,
        params={"api-version": "2018-08-31"} | params,
    )


def test_requires_a_metering_token(standin: RunningStandin, resource: str) -> None:
    no_token = httpx.post(f"{standin.base_url}/api/batchUsageEvent?api-version=2018-08-31", json={"request": []})
    arm_token = post(standin, "usageEvent", event(resource), bearer=token(standin, "https://management.azure.com/"))
    assert no_token.status_code == 403 and no_token.json()["code"] == "Forbidden"
    assert arm_token.status_code == 403


def test_single_event_accepted_then_duplicate(
    standin: RunningStandin, metering: MeteringStandin, resource: str
) -> None:
    first = post(standin, "usageEvent", event(resource, quantity=5.25))
    assert first.status_code == 200
    body = first.json()
    assert body["status"] == "Accepted" and uuid.UUID(body["usageEventId"])
    assert {k: body[k] for k in ("resourceId", "quantity", "dimension", "planId")} == {
        "resourceId": resource,
        "quantity": 5.25,
        "dimension": DIMENSION,
        "planId": PLAN,
    }
    assert body["effectiveStartTime"] == "2026-03-01T10:00:00Z" and body["messageTime"]
    assert first.headers["x-ms-requestid"] == "0f8fad5b-d9cb-469f-a165-70867728950e"
    assert uuid.UUID(first.headers["x-ms-correlationid"])

    # Same resource, dimension and hour (another minute): a duplicate carrying what was accepted.
    again = post(standin, "usageEvent", event(resource, hour=NOW - timedelta(hours=2), quantity=9.0))
    assert again.status_code == 409
    duplicate = again.json()
    assert duplicate["code"] == "Conflict" and duplicate["message"] == "This usage event already exist."
    accepted = duplicate["additionalInfo"]["acceptedMessage"]
    assert accepted["status"] == "Duplicate" and accepted["quantity"] == 5.25
    assert accepted["usageEventId"] == body["usageEventId"]
    assert metering.total_quantity(resource, DIMENSION) == pytest.approx(5.25)


@pytest.mark.parametrize(
    ("change", "target"),
    [
        ({"resourceId": None}, "ResourceId"),
        ({"dimension": ""}, "Dimension"),
        ({"effectiveStartTime": "yesterday"}, "effectiveStartTime"),
        ({"effectiveStartTime": "2026-02-28T11:00:00Z"}, "effectiveStartTime"),  # older than 24 h
        ({"effectiveStartTime": "2026-03-01T13:00:00Z"}, "effectiveStartTime"),  # in the future
        ({"quantity": 0}, "quantity"),
    ],
)
def test_single_event_bad_argument(standin: RunningStandin, resource: str, change: dict[str, Any], target: str) -> None:
    response = post(standin, "usageEvent", event(resource) | change)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "BadArgument" and body["target"] == "usageEventRequest"
    assert body["details"][0]["target"] == target


def test_batch_reports_each_event(standin: RunningStandin, metering: MeteringStandin, resource: str) -> None:
    metering.evaluate(event(resource, hour=NOW - timedelta(hours=3), quantity=2.0))
    batch = [
        event(resource),
        event(resource, hour=NOW - timedelta(hours=3), quantity=7.0),
        event(resource, hour=NOW - timedelta(hours=30)),
        event(str(uuid.uuid4())),
        event(resource, dimension="not-exist"),
    ]
    response = post(standin, "batchUsageEvent", {"request": batch})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 5
    statuses = [item["status"] for item in body["result"]]
    assert statuses == ["Accepted", "Duplicate", "Expired", "ResourceNotFound", "InvalidDimension"]
    duplicate = body["result"][1]
    assert duplicate["quantity"] == 7.0
    assert duplicate["error"]["additionalInfo"]["acceptedMessage"]["quantity"] == 2.0
    expired, not_found, invalid = body["result"][2:]
    assert expired["error"]["details"][0]["target"] == "effectiveStartTime"
    assert not_found["error"]["details"][0]["message"].startswith("The resourceId value provided cannot be found")
    assert invalid["error"]["details"][0]["message"] == "The payload dimension is invalid."


@pytest.mark.parametrize("size", [0, 26])
def test_batch_size_limits(standin: RunningStandin, resource: str, size: int) -> None:
    events = [event(resource, hour=NOW - timedelta(hours=i % 20)) for i in range(size)]
    response = post(standin, "batchUsageEvent", {"request": events})
    assert response.status_code == 400 and response.json()["code"] == "BadArgument"


def test_wrong_api_version(standin: RunningStandin, resource: str) -> None:
    assert (
        post(standin, "batchUsageEvent", {"request": [event(resource)]}, **{"api-version": "2022-01-01"}).status_code
        == 400
    )


def test_injected_faults(standin: RunningStandin, metering: MeteringStandin, resource: str) -> None:
    metering.fail_next(1, status=429)
    metering.fail_next(1, status=503)
    metering.fail_next(1, status=500, after_commit=True)
    throttled = post(standin, "batchUsageEvent", {"request": [event(resource)]})
    unavailable = post(standin, "batchUsageEvent", {"request": [event(resource)]})
    assert (throttled.status_code, unavailable.status_code) == (429, 503)
    assert throttled.headers["retry-after"] == "1"
    assert metering.accepted_events() == []

    lost = post(standin, "batchUsageEvent", {"request": [event(resource)]})
    assert lost.status_code == 500
    assert len(metering.accepted_events()) == 1  # committed although the answer was an error

    retried = post(standin, "batchUsageEvent", {"request": [event(resource)]})
    assert retried.json()["result"][0]["status"] == "Duplicate"
    assert [call["status"] for call in metering.calls] == [429, 503, 500, 200]


def test_plan_must_be_registered_for_the_resource(standin: RunningStandin, resource: str) -> None:
    response = post(standin, "batchUsageEvent", {"request": [event(resource, planId="other")]})
    item = response.json()["result"][0]
    assert item["status"] == "BadArgument" and item["error"]["details"][0]["target"] == "planId"
