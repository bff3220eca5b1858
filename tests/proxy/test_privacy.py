"""What reaches the upstream, and what Liutong keeps: never the caller's key, text or headers."""

from __future__ import annotations

import logging
import uuid

import openai
import pytest

from tests.proxy.conftest import Harness
from tests.proxy.fakes import CALLER_KEY


async def test_only_upstream_headers_are_forwarded(proxy: Harness) -> None:
    caller_headers = {
        "cookie": "session=abc", "x-forwarded-for": "203.0.113.7", "user-agent": "caller-agent/1.0",
        "openai-organization": "org-caller", "openai-project": "proj-caller", "x-custom": "custom",
    }
    async with proxy.openai(default_headers=caller_headers) as client:
        await client.chat.completions.create(model="mock-chat", messages=[{"role": "user", "content": "hi"}])
        await client.chat.completions.create(model="mock-org", messages=[{"role": "user", "content": "hi"}])
    plain, with_org = proxy.upstream.received
    assert set(plain.headers) <= {"host", "content-type", "accept", "content-length", "user-agent", "accept-encoding"}
    assert plain.headers["user-agent"].startswith("Liutong-Proxy")
    assert CALLER_KEY not in str(plain.headers) and "authorization" not in plain.headers
    assert (with_org.headers["openai-organization"], with_org.headers["openai-project"]) == (
        "org-liutong", "proj-liutong",
    )
    assert "x-stainless-lang" not in with_org.headers


async def test_privacy_canary_appears_in_no_record_and_no_log_line(
    proxy: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    canary = f"canary-{uuid.uuid4().hex}"
    caplog.set_level(logging.DEBUG)
    proxy.mock.break_after_chunks = 3
    async with proxy.openai(default_headers={"x-canary": canary}) as client:
        message = [{"role": "user", "content": f"my secret is {canary}"}]
        await client.chat.completions.create(model="mock-chat", messages=message)
        await client.embeddings.create(model="mock-embed", input=[canary, f"again {canary}"])
        with pytest.raises(openai.APIError):  # the broken stream
            [_ async for _ in await client.chat.completions.create(model="mock-chat", messages=message, stream=True)]
        proxy.mock.fail_status = 400
        with pytest.raises(openai.APIError):
            await client.chat.completions.create(model="mock-chat", messages=message)
        with pytest.raises(openai.APIError):
            await client.chat.completions.create(model="mock-down", messages=message)
    records = proxy.sink.wait_for(5)
    assert len(records) == 5
    assert canary not in repr(records)
    assert any(r.name.startswith("liutong") for r in caplog.records)  # the server's thread logs are seen
    logged = [r.getMessage() + repr(r.args) + (r.exc_text or "") for r in caplog.records]
    assert not [line for line in logged if canary in line]
    assert all(canary not in str(r.headers) for r in proxy.upstream.received)
