"""The Marketplace notification endpoint, end to end against Azurite."""

import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from localdev.stack import LocalStack
from provisioning.notifications import deployment_id_for
from tests.provisioning.events import application_id, lifecycle, notification
from tests.provisioning.service import snapshot

pytestmark = pytest.mark.e2e


@pytest.fixture
async def client(stack: LocalStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.service_url, timeout=30) as http:
        yield http


def url(stack: LocalStack, sig: str | None = None) -> str:
    secret = stack.webhook_secret if sig is None else sig
    return f"/api/marketplace/resource?sig={secret}"


async def test_put_succeeded_is_stored_and_replay_is_a_no_op(stack: LocalStack, client: httpx.AsyncClient) -> None:
    app_id = application_id(f"hook-{uuid.uuid4().hex[:8]}")
    payload = notification(app_id=app_id)
    first = await client.post(url(stack), json=payload)
    assert first.status_code == 200, first.text
    assert first.json()["provisioningState"] == "Succeeded"
    before = await snapshot(stack)
    again = await client.post(url(stack), json=payload)
    assert again.status_code == 200
    assert await snapshot(stack) == before
    deployment = await stack_deployment(stack, app_id)
    assert deployment["plan_name"] == "standard"
    assert deployment["application_id"] == app_id.lower()


async def stack_deployment(stack: LocalStack, app_id: str) -> dict[str, object]:
    tables = (await snapshot(stack))["deployments"]
    matches = [e for e in tables if e["PartitionKey"] == deployment_id_for(app_id)]
    assert len(matches) == 1
    return matches[0]


async def test_shuffled_history_over_http_ends_deleted(stack: LocalStack, client: httpx.AsyncClient) -> None:
    app_id = application_id(f"hook-{uuid.uuid4().hex[:8]}")
    history = lifecycle(app_id)
    for payload in [history[3], history[0], history[4], history[1], history[2], history[0]]:
        response = await client.post(url(stack), json=payload)
        assert response.status_code == 200, response.text
    assert (await stack_deployment(stack, app_id))["state"] == "Deleted"


BAD_REQUESTS = [
    ("missing sig", None, {"json": notification()}, 401),
    ("wrong sig", "not-the-secret", {"json": notification()}, 401),
    ("malformed json", "", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 400),
    ("json array", "", {"json": [notification()]}, 400),
    ("missing applicationId", "", {"json": {k: v for k, v in notification().items() if k != "applicationId"}}, 400),
    ("missing eventTime", "", {"json": {k: v for k, v in notification().items() if k != "eventTime"}}, 400),
    ("wrong type eventType", "", {"json": {**notification(), "eventType": 7}}, 400),
    ("wrong type plan", "", {"json": {**notification(), "plan": ["standard"]}}, 400),
    ("not an application id", "", {"json": {**notification(), "applicationId": "/subscriptions/x"}}, 400),
    ("2 MB body", "", {"content": b'{"a":"' + b"x" * (2 * 1024 * 1024) + b'"}',
                       "headers": {"content-type": "application/json"}}, 413),
    ("text body", "", {"content": b"hello", "headers": {"content-type": "text/plain"}}, 415),
]


@pytest.mark.parametrize(("name", "sig", "request_kwargs", "status"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
async def test_bad_requests_get_openai_errors_and_write_nothing(
    stack: LocalStack, client: httpx.AsyncClient, name: str, sig: str | None, request_kwargs: dict, status: int
) -> None:
    before = await snapshot(stack)
    target = "/api/marketplace/resource" if sig is None else url(stack, sig or stack.webhook_secret)
    response = await client.post(target, **request_kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert await snapshot(stack) == before


async def test_wrong_method_and_unknown_route_are_openai_errors(client: httpx.AsyncClient) -> None:
    wrong = await client.get("/api/marketplace/resource")
    assert wrong.status_code == 405 and "error" in wrong.json()
    missing = await client.get("/api/nothing-here")
    assert missing.status_code == 404 and "error" in missing.json()


async def test_secret_never_reaches_the_logs(
    stack: LocalStack, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    await client.post(url(stack), json=notification(app_id=application_id("logcheck")))
    await client.post(url(stack, "wrong"), json=notification())
    # The test's own httpx client logs the URL it calls; the service never calls itself.
    own = f"{stack.service_url}/api/marketplace"
    service_lines = [r.getMessage() for r in caplog.records if own not in r.getMessage()]
    assert service_lines, "the service logged nothing at all"
    assert not [line for line in service_lines if stack.webhook_secret in line]
    assert not [line for line in service_lines if json.dumps(notification()) in line]
