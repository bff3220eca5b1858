"""Key rotation through the whole local stack: however often and however concurrently a managed app rotates,
at most two of its keys work at the proxy (the openai SDK) once the principal cache TTL has passed."""

import asyncio
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
import openai
import pytest

from keystore.keys import hash_key
from localdev.stack import LocalStack
from tests.provisioning.service import app_token, snapshot
from tests.provisioning.test_exchange_http import deploy

pytestmark = pytest.mark.e2e

TTL_SECONDS = 1  # principal_cache_ttl_seconds of the test stack (tests/conftest.py)



async def post(service_http: httpx.AsyncClient, token: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return await service_http.post(f"/api/provisioning/{path}", json=body, headers={"authorization": f"Bearer {token}"})


async def rotate(service_http: httpx.AsyncClient, token: str, app_id: str, **options: Any) -> dict[str, Any]:
    response = await post(service_http, token, "key/rotate", {"application_id": app_id, **options})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def current(service_http: httpx.AsyncClient, token: str, app_id: str) -> dict[str, Any]:
    response = await post(service_http, token, "key", {"application_id": app_id})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def working(stack: LocalStack, keys: set[str]) -> set[str]:
    """The keys the proxy accepts, asked after the principal cache TTL so no cached entry decides."""
    await asyncio.sleep(TTL_SECONDS + 0.2)

    async def accepts(key: str) -> bool:
        async with openai.AsyncOpenAI(base_url=f"{stack.service_url}/v1", api_key=key, max_retries=0) as api:
            try:
                await api.models.list()
            except openai.AuthenticationError:
                return False
        return True

    verdicts = await asyncio.gather(*(accepts(key) for key in keys))
    return {key for key, ok in zip(keys, verdicts, strict=True) if ok}


async def key_rows(stack: LocalStack, app_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The deployment's key rows (every one, also keys nobody was handed) and its audit rows."""
    tables = await snapshot(stack)
    keys = [row for row in tables["keys"] if row.get("application_id") == app_id.lower()]
    audit = [row for row in tables["audit"] if row.get("resource_id") == app_id.lower()]
    return keys, audit


def usable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [r for r in rows if r["status"] != "revoked" and (r.get("expires_at") is None or r["expires_at"] > now)]


def assert_one_audit_row_per_revocation(rows: list[dict[str, Any]], audit: list[dict[str, Any]]) -> None:
    revoked = {r["key_id"] for r in rows if r["status"] == "revoked"}
    assert Counter(a["key_id"] for a in audit if a["action"] == "provisioning.revoke") == Counter(revoked)


async def test_sequential_rotations_leave_the_current_and_the_previous_key(
    stack: LocalStack, service_http: httpx.AsyncClient
) -> None:
    app_id = await deploy(stack, service_http)
    token = await app_token(app_id)
    grants = [await current(service_http, token, app_id)]
    for _ in range(3):
        grants.append(await rotate(service_http, token, app_id))
    keys = [g["key"] for g in grants]
    assert len(set(keys)) == 4

    assert await working(stack, set(keys)) == {keys[-2], keys[-1]}
    latest = await current(service_http, token, app_id)
    assert latest["key"] == keys[-1] and latest["previous_key_valid_until"] is not None
    rows, audit = await key_rows(stack, app_id)
    assert {r["key_id"] for r in rows if r["status"] == "revoked"} == {grants[0]["key_id"], grants[1]["key_id"]}
    assert_one_audit_row_per_revocation(rows, audit)


async def test_fifty_concurrent_rotations_leave_at_most_two_working_keys(
    stack: LocalStack, service_http: httpx.AsyncClient
) -> None:
    app_id = await deploy(stack, service_http)
    token = await app_token(app_id)
    first = await current(service_http, token, app_id)
    grants = await asyncio.gather(*(rotate(service_http, token, app_id) for _ in range(50)))
    handed_out = {first["key"], *(g["key"] for g in grants)}

    alive = await working(stack, handed_out)
    latest = await current(service_http, token, app_id)
    assert 1 <= len(alive) <= 2 and latest["key"] in alive
    rows, audit = await key_rows(stack, app_id)
    assert len(usable(rows)) <= 2  # also counts key rows no caller was handed
    assert [r["key_id"] for r in rows if r["RowKey"] == hash_key(latest["key"])] == [latest["key_id"]]
    assert_one_audit_row_per_revocation(rows, audit)


async def test_revoke_previous_leaves_exactly_one_key(stack: LocalStack, service_http: httpx.AsyncClient) -> None:
    app_id = await deploy(stack, service_http)
    token = await app_token(app_id)
    leaked = await current(service_http, token, app_id)
    graced = await rotate(service_http, token, app_id)
    fresh = await rotate(service_http, token, app_id, revoke_previous=True)
    assert fresh["previous_key_valid_until"] is None

    assert await working(stack, {leaked["key"], graced["key"], fresh["key"]}) == {fresh["key"]}
    assert (await current(service_http, token, app_id))["key"] == fresh["key"]
    rows, audit = await key_rows(stack, app_id)
    assert [r["key_id"] for r in usable(rows)] == [fresh["key_id"]]
    assert_one_audit_row_per_revocation(rows, audit)


async def test_fifty_concurrent_rotations_without_grace_leave_one_key(
    stack: LocalStack, service_http: httpx.AsyncClient
) -> None:
    app_id = await deploy(stack, service_http)
    token = await app_token(app_id)
    first = await current(service_http, token, app_id)
    grants = await asyncio.gather(*(rotate(service_http, token, app_id, revoke_previous=True) for _ in range(50)))
    handed_out = {first["key"], *(g["key"] for g in grants)}

    latest = await current(service_http, token, app_id)
    assert await working(stack, handed_out) == {latest["key"]}
    rows, audit = await key_rows(stack, app_id)
    assert [r["key_id"] for r in usable(rows)] == [latest["key_id"]]
    assert_one_audit_row_per_revocation(rows, audit)


@pytest.mark.parametrize(("path", "body", "param"), [
    ("key/rotate", {"revoke_previous": "yes"}, "revoke_previous"),
    ("key/rotate", {"revoke_previous": None}, "revoke_previous"),
    ("key/rotate", {"revoke_previous": 1}, "revoke_previous"),
    ("key/rotate", {"grace": 0}, "grace"),
    ("key", {"revoke_previous": True}, "revoke_previous"),
])
async def test_bad_rotation_options_are_refused_and_change_nothing(
    stack: LocalStack, service_http: httpx.AsyncClient, path: str, body: dict[str, Any], param: str
) -> None:
    app_id = await deploy(stack, service_http)
    token = await app_token(app_id)
    await current(service_http, token, app_id)
    before = await key_rows(stack, app_id)
    response = await post(service_http, token, path, {"application_id": app_id, **body})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error" and error["message"]
    assert await key_rows(stack, app_id) == before
