"""Streams that do not end well: the caller leaves, the upstream breaks or stalls."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import openai
import pytest

from localdev.mock_upstream import DEFAULT_REPLY
from tests.proxy.conftest import Harness
from tests.proxy.fakes import CALLER_KEY
from tests.proxy.test_chat import MESSAGES

WORDS = len(DEFAULT_REPLY.split(" "))  # one completion token each


async def test_caller_that_disconnects_mid_stream_is_billed_in_full(proxy: Harness) -> None:
    proxy.mock.chunk_delay_ms = 40
    async with proxy.openai() as client:
        stream = await client.chat.completions.create(model="mock-chat", messages=MESSAGES, stream=True)
        async for _ in stream:
            break
        await stream.close()
    [record] = proxy.sink.wait_for(1)
    assert record.completion_tokens == WORDS and record.estimated is False
    assert record.status == 499  # the caller left; the upstream's usage chunk was still read
    assert proxy.limiter.calls("settle") == [record.total_tokens] and proxy.limiter.calls("refund") == []


async def test_drain_is_bounded_and_then_estimates(make_proxy: Callable[..., Harness]) -> None:
    proxy = make_proxy(stream_drain_max_seconds=0.2)
    proxy.mock.stall_after_chunks, proxy.mock.stall_seconds = 4, 2
    async with proxy.openai() as client:
        stream = await client.chat.completions.create(model="mock-chat", messages=MESSAGES, stream=True)
        async for _ in stream:
            break
        await stream.close()
    [record] = proxy.sink.wait_for(1)
    assert record.estimated is True and record.status == 499 and 0 < record.completion_tokens < WORDS


async def test_upstream_break_mid_stream_sends_an_error_and_records_an_estimate(proxy: Harness) -> None:
    proxy.mock.break_after_chunks = 4  # the role chunk and three words
    proxy.mock.chunk_delay_ms = 20  # so the chunks are read before the connection drops
    seen: list[str] = []
    async with proxy.openai() as client:
        stream = await client.chat.completions.create(model="mock-chat", messages=MESSAGES, stream=True)
        with pytest.raises(openai.APIError) as raised:
            async for chunk in stream:
                seen.append(chunk.choices[0].delta.content or "")
    assert raised.value.code == "upstream_stream_broken"
    [record] = proxy.sink.wait_for(1)
    assert record.estimated is True and record.status == 502
    assert record.completion_tokens == -(-len("".join(seen)) // 4) > 0
    assert proxy.limiter.calls("settle") == [record.total_tokens]


async def test_break_before_any_output_is_refunded(proxy: Harness) -> None:
    proxy.mock.break_after_chunks = 0
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{proxy.base_url}/v1/chat/completions", headers={"authorization": f"Bearer {CALLER_KEY}"},
            json={"model": "mock-chat", "messages": MESSAGES, "stream": True},
        )
    # The mock drops the connection right after its headers; under load the drop can win the race with
    # the headers, and the proxy then answers 502 before streaming. Either way nothing is billed.
    if response.status_code == 200:
        frames = [f for f in response.text.split("\n\n") if f]
        assert len(frames) == 1 and json.loads(frames[0].removeprefix("data: "))["error"]["type"] == "server_error"
    else:
        assert response.status_code == 502 and response.json()["error"]["type"] == "server_error"
    [record] = proxy.sink.wait_for(1)
    assert record.total_tokens == 0 and proxy.limiter.calls("refund") == [None]


async def test_upstream_that_stalls_mid_stream_times_out_with_an_error_event(proxy: Harness) -> None:
    proxy.mock.stall_after_chunks, proxy.mock.stall_seconds = 3, 2
    async with proxy.openai() as client:
        stream = await client.chat.completions.create(model="mock-slow", messages=MESSAGES, stream=True)
        with pytest.raises(openai.APIError) as raised:
            [_ async for _ in stream]
    assert raised.value.code == "upstream_timeout"
    [record] = proxy.sink.wait_for(1)
    assert record.estimated is True and record.completion_tokens > 0
