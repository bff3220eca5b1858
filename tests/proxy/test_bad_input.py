"""Bad requests on every endpoint: OpenAI-style 4xx, no upstream call, nothing admitted or recorded."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.proxy.conftest import Harness
from tests.proxy.fakes import CALLER_KEY

AUTH = {"authorization": f"Bearer {CALLER_KEY}"}
CHAT = [{"role": "user", "content": "hi"}]


def assert_nothing_happened(proxy: Harness) -> None:
    assert proxy.sink.records == [] and proxy.limiter.log == [] and list(proxy.upstream.received) == []


async def post(proxy: Harness, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(f"{proxy.base_url}/v1/{path}", **kwargs)


@pytest.mark.parametrize("path", ["chat/completions", "embeddings"])
@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'{"model": "mock-chat", "messages": [', None),
        (b'["not", "an", "object"]', None),
        (b'{"messages": [{"role": "user", "content": "hi"}], "input": "x"}', "model"),
        (b'{"model": 7, "messages": [{"role": "user", "content": "hi"}], "input": "x"}', "model"),
    ],
)
async def test_malformed_bodies_are_400(proxy: Harness, path: str, body: bytes, param: str | None) -> None:
    response = await post(proxy, path, content=body, headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert_nothing_happened(proxy)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"messages": "hi"}, "messages"),
        ({"messages": []}, "messages"),
        ({"stream": "yes"}, "stream"),
        ({"stream": True, "stream_options": "usage"}, "stream_options"),
        ({"stream": True, "stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
        ({"max_tokens": "100"}, "max_tokens"),
        ({"max_completion_tokens": -1}, "max_completion_tokens"),
        ({"n": 0}, "n"),
        ({"n": True}, "n"),
    ],
)
async def test_chat_fields_of_the_wrong_type_are_400(proxy: Harness, fields: dict[str, Any], param: str) -> None:
    response = await post(proxy, "chat/completions", json={"model": "mock-chat", "messages": CHAT, **fields},
                          headers=AUTH)
    assert response.status_code == 400 and response.json()["error"]["param"] == param
    assert_nothing_happened(proxy)


@pytest.mark.parametrize("value", [5, "", [], [1, "a"], [[1], []], {"text": "x"}, None])
async def test_embeddings_input_of_the_wrong_type_is_400(proxy: Harness, value: Any) -> None:
    response = await post(proxy, "embeddings", json={"model": "mock-embed", "input": value}, headers=AUTH)
    assert response.status_code == 400 and response.json()["error"]["param"] == "input"
    assert_nothing_happened(proxy)


async def test_oversized_body_is_413_through_the_sdk(proxy: Harness) -> None:
    async with proxy.openai() as client:
        with pytest.raises(openai.APIStatusError) as raised:
            huge = [{"role": "user", "content": "x" * 70_000}]
            await client.chat.completions.create(model="mock-chat", messages=huge)
    assert raised.value.status_code == 413 and raised.value.code == "request_too_large"
    assert_nothing_happened(proxy)


@pytest.mark.parametrize("model", ["mock-unlisted", "no-such-model"])
async def test_model_outside_the_plan_is_403_model_not_found(proxy: Harness, model: str) -> None:
    async with proxy.openai() as client:
        with pytest.raises(openai.PermissionDeniedError) as chat:
            await client.chat.completions.create(model=model, messages=CHAT)
        with pytest.raises(openai.PermissionDeniedError) as embed:
            await client.embeddings.create(model=model, input="x")
    for raised in (chat, embed):
        assert raised.value.code == "model_not_found" and raised.value.param == "model"
    assert_nothing_happened(proxy)


async def test_unknown_key_is_401_on_every_endpoint(proxy: Harness) -> None:
    async with proxy.openai(api_key="lt-wrong") as client:
        with pytest.raises(openai.AuthenticationError):
            await client.chat.completions.create(model="mock-chat", messages=CHAT)
        with pytest.raises(openai.AuthenticationError):
            await client.embeddings.create(model="mock-embed", input="x")
        with pytest.raises(openai.AuthenticationError):
            await client.models.list()
    response = await post(proxy, "chat/completions", json={"model": "mock-chat", "messages": CHAT})
    assert response.status_code == 401
    assert_nothing_happened(proxy)


async def test_wrong_content_type_is_415(proxy: Harness) -> None:
    response = await post(proxy, "chat/completions", content=b"model=mock-chat",
                          headers={**AUTH, "content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415
    assert_nothing_happened(proxy)
