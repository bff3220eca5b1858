"""Upstream failures become OpenAI errors, the reservation is refunded and nothing is billed."""

from __future__ import annotations

import openai
import pytest

from tests.proxy.conftest import Harness
from tests.proxy.fakes import RATE_HEADERS
from tests.proxy.test_chat import MESSAGES


def assert_refunded(proxy: Harness, status: int) -> None:
    [record] = proxy.sink.records
    assert record.status == status and record.total_tokens == 0 and record.plan_tokens == 0
    assert proxy.limiter.calls("refund") == [None] and proxy.limiter.calls("settle") == []


@pytest.mark.parametrize("stream", [False, True])
async def test_upstream_500_with_a_plain_body_is_a_502(proxy: Harness, stream: bool) -> None:
    proxy.mock.fail_status, proxy.mock.fail_openai_body = 500, False
    async with proxy.openai() as client:
        with pytest.raises(openai.APIStatusError) as raised:
            await client.chat.completions.create(model="mock-chat", messages=MESSAGES, stream=stream)
    assert raised.value.status_code == 502 and raised.value.code == "bad_gateway"
    assert raised.value.response.headers["x-ratelimit-remaining-requests"] == RATE_HEADERS[
        "x-ratelimit-remaining-requests"
    ]
    assert_refunded(proxy, 502)


@pytest.mark.parametrize("status", [400, 429, 503])
async def test_openai_shaped_upstream_errors_keep_their_status(proxy: Harness, status: int) -> None:
    proxy.mock.fail_status = status
    async with proxy.openai() as client:
        with pytest.raises(openai.APIStatusError) as raised:
            await client.embeddings.create(model="mock-embed", input="hello")
    assert raised.value.status_code == status and raised.value.code == "injected_failure"
    assert raised.value.message.startswith(f"Error code: {status}")
    assert_refunded(proxy, status)


async def test_upstream_refusing_our_credential_is_a_502_that_quotes_nothing(proxy: Harness) -> None:
    proxy.mock.fail_status = 401
    async with proxy.openai() as client:
        with pytest.raises(openai.APIStatusError) as raised:
            await client.chat.completions.create(model="mock-kv", messages=MESSAGES)
        proxy.mock.fail_status = None
        await client.chat.completions.create(model="mock-kv", messages=MESSAGES)
    assert raised.value.status_code == 502 and raised.value.code == "upstream_auth_failed"
    assert "sk-" not in raised.value.response.text
    assert proxy.secrets.reads == ["upstream-key", "upstream-key"]  # read again after the refusal


async def test_upstream_that_does_not_answer_is_a_504(proxy: Harness) -> None:
    proxy.mock.hang_seconds = 2
    async with proxy.openai() as client:
        with pytest.raises(openai.APIStatusError) as raised:
            await client.chat.completions.create(model="mock-slow", messages=MESSAGES)
    assert raised.value.status_code == 504 and raised.value.code == "upstream_timeout"
    assert_refunded(proxy, 504)


@pytest.mark.parametrize("stream", [False, True])
async def test_unreachable_upstream_is_a_502(proxy: Harness, stream: bool) -> None:
    async with proxy.openai() as client:
        with pytest.raises(openai.APIStatusError) as raised:
            await client.chat.completions.create(model="mock-down", messages=MESSAGES, stream=stream)
    assert raised.value.status_code == 502 and "unreachable" in raised.value.message
    assert_refunded(proxy, 502)
