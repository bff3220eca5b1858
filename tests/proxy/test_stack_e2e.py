"""The whole path through `make run`-equivalent wiring: marketplace key exchange, then the openai SDK
through the proxy to the mock upstream, with real usage records in Azurite."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import httpx
import openai
import pytest

from localdev.stack import LocalStack
from tests.provisioning.events import notification
from tests.provisioning.service import app_token, snapshot
from tests.provisioning.test_exchange_http import deploy, exchange

pytestmark = pytest.mark.e2e


@pytest.fixture
async def client(stack: LocalStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.service_url, timeout=30) as http:
        yield http


async def marketplace_key(stack: LocalStack, client: httpx.AsyncClient) -> tuple[str, str]:
    app_id = await deploy(stack, client)
    response = await exchange(client, await app_token(app_id), app_id)
    assert response.status_code == 200, response.text
    return app_id, response.json()["key"]


def sdk(stack: LocalStack, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{stack.service_url}/v1", api_key=key, max_retries=0)


async def usage_rows(stack: LocalStack, key_id: str, *, expected: int) -> list[dict[str, object]]:
    for _ in range(100):
        rows = [r for r in (await snapshot(stack))["usage"] if r.get("key_id") == key_id and "request_id" in r]
        if len(rows) >= expected:
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {expected} usage rows for {key_id}, found {len(rows)}")


async def test_openai_sdk_chat_stream_embeddings_and_models(stack: LocalStack, client: httpx.AsyncClient) -> None:
    _, key = await marketplace_key(stack, client)
    api = sdk(stack, key)
    messages = [{"role": "user", "content": "Say hello to Liutong."}]
    plain = await api.chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert plain.choices[0].message.content and plain.usage is not None

    chunks = [c async for c in await api.chat.completions.create(
        model="gpt-4o-mini", messages=messages, stream=True, stream_options={"include_usage": True})]
    streamed_usage = chunks[-1].usage
    assert streamed_usage is not None and streamed_usage.total_tokens == plain.usage.total_tokens

    quiet = [c async for c in await api.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)]
    assert all(c.usage is None for c in quiet) and all(c.choices for c in quiet)

    vectors = await api.embeddings.create(model="text-embedding-3-small", input=["one", "two"])
    assert len(vectors.data) == 2

    models = {m.id async for m in api.models.list()}
    assert models == {"gpt-4o-mini", "gpt-4o", "text-embedding-3-small"}

    key_id = (await exchange_key_id(stack, client, key))
    rows = await usage_rows(stack, key_id, expected=4)
    chats = [r for r in rows if r["endpoint"] == "/v1/chat/completions"]
    assert [r["total_tokens"] for r in chats] == [plain.usage.total_tokens] * 3
    assert all(r["estimated"] is False and r["status"] == 200 for r in chats)


async def exchange_key_id(stack: LocalStack, client: httpx.AsyncClient, key: str) -> str:
    from keystore.keys import hash_key
    rows = [r for r in (await snapshot(stack))["keys"] if r["RowKey"] == hash_key(key)]
    return str(rows[0]["key_id"])


async def test_privacy_canary_reaches_no_table_and_no_log(
    stack: LocalStack, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    _, key = await marketplace_key(stack, client)
    canary = f"canary-{uuid.uuid4().hex}"
    api = openai.AsyncOpenAI(
        base_url=f"{stack.service_url}/v1", api_key=key, max_retries=0, default_headers={"x-canary": canary}
    )
    await api.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": canary}])
    async for _ in await api.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": canary}], stream=True
    ):
        pass
    await api.embeddings.create(model="text-embedding-3-small", input=canary)
    await usage_rows(stack, await exchange_key_id(stack, client, key), expected=3)
    assert canary not in json.dumps(await snapshot(stack), default=str)
    service_lines = [r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore", "openai"))]
    assert not [line for line in service_lines if canary in line or key in line]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b'{"model": 5, "messages": []}', 400),
        (b'{"model": "gpt-4o-mini", "messages": "hi"}', 400),
        (b'{"model": "not-in-plan", "messages": [{"role": "user", "content": "x"}]}', 403),
    ],
)
async def test_bad_input_is_an_openai_error_and_bills_nothing(
    stack: LocalStack, client: httpx.AsyncClient, body: bytes, status: int
) -> None:
    _, key = await marketplace_key(stack, client)
    before = len((await snapshot(stack))["usage"])
    response = await client.post(
        "/v1/chat/completions", content=body,
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
    )
    assert response.status_code == status, response.text
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    await asyncio.sleep(0.2)
    assert len((await snapshot(stack))["usage"]) == before


async def test_unknown_and_revoked_keys_are_401(stack: LocalStack, client: httpx.AsyncClient) -> None:
    app_id, key = await marketplace_key(stack, client)
    with pytest.raises(openai.AuthenticationError):
        await sdk(stack, "lt-" + "A" * 43).models.list()
    await sdk(stack, key).models.list()
    payload = notification("DELETE", "Deleting", app_id=app_id, event_time="2026-11-22T12:00:00Z")
    assert (await client.post(f"/api/marketplace/resource?sig={stack.webhook_secret}", json=payload)).status_code == 200
    await asyncio.sleep(1.1)  # the stack's principal cache TTL is 1 s
    with pytest.raises(openai.AuthenticationError):
        await sdk(stack, key).models.list()


async def test_oversized_body_is_413(stack: LocalStack, client: httpx.AsyncClient) -> None:
    _, key = await marketplace_key(stack, client)
    huge = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"' + b"x" * (9 * 1024 * 1024) + b'"}]}'
    response = await client.post(
        "/v1/chat/completions", content=huge,
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
    )
    assert response.status_code == 413
