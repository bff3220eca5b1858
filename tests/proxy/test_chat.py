"""Chat, embeddings and models through the unmodified openai SDK: answers and usage to the token."""

from __future__ import annotations

import base64

import httpx

from tests.proxy.conftest import PLAN, Harness
from tests.proxy.fakes import CALLER_KEY, PRINCIPAL, RATE_HEADERS
from usage.records import UsageRecord

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello to the proxy."}]


def assert_usage(record: UsageRecord, usage: object) -> None:
    assert usage is not None
    assert record.prompt_tokens == usage.prompt_tokens  # type: ignore[attr-defined]
    assert record.completion_tokens == usage.completion_tokens  # type: ignore[attr-defined]
    assert record.total_tokens == usage.total_tokens  # type: ignore[attr-defined]
    assert record.cached_tokens == usage.prompt_tokens_details.cached_tokens  # type: ignore[attr-defined]
    assert record.estimated is False


async def test_chat_answer_and_usage_match_the_upstream(proxy: Harness) -> None:
    proxy.mock.cached_tokens = 4
    async with proxy.openai() as client:
        raw = await client.chat.completions.with_raw_response.create(model="mock-chat", messages=MESSAGES)
    completion = raw.parse()
    assert completion.choices[0].message.content.startswith("Hello from the Liutong mock upstream")
    assert completion.model == "mock-model"
    for name, value in RATE_HEADERS.items():
        assert raw.headers[name] == value
    [record] = proxy.sink.records
    assert_usage(record, completion.usage)
    assert record.cached_tokens == 4 and record.total_tokens == record.prompt_tokens + record.completion_tokens
    who = (record.team, record.key_id, record.plan_id, record.model_alias)
    assert who == ("team-a", "key-1", "test-plan", "mock-chat")
    assert (record.deployment_id, record.resource_usage_id) == (PRINCIPAL.deployment_id, PRINCIPAL.resource_usage_id)
    assert record.endpoint == "/v1/chat/completions" and record.status == 200
    assert raw.headers["x-request-id"] == record.request_id
    assert proxy.limiter.calls("settle") == [record.total_tokens] and proxy.limiter.calls("refund") == []
    assert proxy.upstream.received[-1].body["model"] == "mock-model"


async def test_reasoning_tokens_are_recorded_beside_the_completion_tokens(proxy: Harness) -> None:
    proxy.mock.reasoning_tokens = 9
    async with proxy.openai() as client:
        completion = await client.chat.completions.create(model="mock-chat", messages=MESSAGES)
        stream = await client.chat.completions.create(model="mock-chat", messages=MESSAGES, stream=True)
        [_ async for _ in stream]
    details = completion.usage.completion_tokens_details  # type: ignore[union-attr]
    assert details is not None and details.reasoning_tokens == 9
    plain, streamed = proxy.sink.records
    assert plain.reasoning_tokens == streamed.reasoning_tokens == 9
    assert plain.completion_tokens == streamed.completion_tokens == completion.usage.completion_tokens  # type: ignore[union-attr]
    assert plain.total_tokens == plain.prompt_tokens + plain.completion_tokens  # inside, not added


async def test_stream_with_include_usage_shows_the_usage_chunk(proxy: Harness) -> None:
    async with proxy.openai() as client:
        stream = await client.chat.completions.create(
            model="mock-chat", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert all(c.usage is None for c in chunks[:-1])
    [record] = proxy.sink.records
    assert_usage(record, chunks[-1].usage)
    assert proxy.limiter.calls("settle") == [record.total_tokens]


async def test_stream_without_include_usage_hides_it_but_bills_it(proxy: Harness) -> None:
    async with proxy.openai() as client:
        stream = await client.chat.completions.create(model="mock-chat", messages=MESSAGES, stream=True)
        chunks = [chunk async for chunk in stream]
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)
    assert proxy.upstream.received[-1].body["stream_options"] == {"include_usage": True}
    [record] = proxy.sink.records
    assert record.completion_tokens == len(chunks) - 2  # one per word; minus the role and finish chunks
    assert record.estimated is False and record.total_tokens > 0


async def test_streams_are_byte_for_byte_what_the_upstream_sends_to_a_direct_caller(proxy: Harness) -> None:
    body = {"model": "mock-model", "messages": MESSAGES, "stream": True}
    async with httpx.AsyncClient() as http:
        for options in ({}, {"stream_options": {"include_usage": True}}):
            direct = await http.post(f"{proxy.upstream.base_url}/v1/chat/completions", json={**body, **options})
            proxied = await http.post(
                f"{proxy.base_url}/v1/chat/completions", json={**body, **options, "model": "mock-chat"},
                headers={"authorization": f"Bearer {CALLER_KEY}"},
            )
            assert proxied.status_code == 200
            assert proxied.headers["content-type"].startswith("text/event-stream")
            assert proxied.content == direct.content
            assert (b'"usage"' in proxied.content) is bool(options)
    assert [r.total_tokens for r in proxy.sink.records] == [proxy.sink.records[0].total_tokens] * 2


async def test_stream_and_non_stream_bill_the_same(proxy: Harness) -> None:
    proxy.mock.cached_tokens = 3
    async with proxy.openai() as client:
        await client.chat.completions.create(model="mock-chat", messages=MESSAGES, max_tokens=5)
        stream = await client.chat.completions.create(model="mock-chat", messages=MESSAGES, max_tokens=5, stream=True)
        [_ async for _ in stream]
    plain, streamed = proxy.sink.records

    def billed(record: UsageRecord) -> tuple[int, ...]:
        return record.prompt_tokens, record.cached_tokens, record.completion_tokens, record.total_tokens

    assert billed(plain) == billed(streamed) and plain.completion_tokens == 5
    settle_plain, settle_streamed = proxy.limiter.calls("settle")
    assert settle_plain == settle_streamed == plain.total_tokens


async def test_reservation_covers_prompt_and_max_tokens_times_n(proxy: Harness) -> None:
    async with proxy.openai() as client:
        await client.chat.completions.create(model="mock-chat", messages=MESSAGES, max_completion_tokens=50, n=2)
    [(alias, estimate)] = proxy.limiter.calls("admit")
    assert alias == "mock-chat" and estimate > 100


async def test_embeddings_usage_and_plan_rate(proxy: Harness) -> None:
    async with proxy.openai() as client:
        result = await client.embeddings.create(model="mock-embed", input=["first text", "second text"])
        encoded = await client.embeddings.create(model="mock-embed", input="third", encoding_format="base64")
    assert [d.index for d in result.data] == [0, 1] and len(result.data[0].embedding) == 8
    assert len(base64.b64decode(encoded.data[0].embedding)) == 8 * 4  # float32s, as OpenAI encodes them
    first = proxy.sink.records[0]
    assert first.endpoint == "/v1/embeddings" and first.prompt_tokens == result.usage.prompt_tokens
    assert first.total_tokens == result.usage.total_tokens and first.completion_tokens == 0
    assert first.plan_tokens == PLAN.plan_tokens("mock-embed", first.total_tokens)
    assert proxy.upstream.received[0].body["model"] == "mock-embedding"


async def test_embeddings_of_token_ids_reserve_exactly(proxy: Harness) -> None:
    async with proxy.openai() as client:
        await client.embeddings.create(model="mock-embed", input=[[1, 2, 3], [4, 5]])
    [(_, estimate)] = proxy.limiter.calls("admit")
    assert estimate == PLAN.plan_tokens("mock-embed", 5)
    assert proxy.sink.records[0].prompt_tokens == 5


async def test_models_lists_only_the_plan_aliases_that_are_configured(proxy: Harness) -> None:
    async with proxy.openai() as client:
        models = [m async for m in client.models.list()]
    assert [m.id for m in models] == list(PLAN.models)
    assert all(m.object == "model" and m.owned_by == "liutong" for m in models)
    assert "mock-unlisted" not in {m.id for m in models}
    assert proxy.sink.records == [] and proxy.limiter.log == []


async def test_azure_openai_deployment_gets_an_entra_token_and_no_key(proxy: Harness) -> None:
    async with proxy.openai() as client:
        await client.chat.completions.create(model="mock-azure", messages=MESSAGES)
        await client.chat.completions.create(model="mock-azure", messages=MESSAGES)
    first, second = proxy.upstream.received
    assert first.path == "/openai/deployments/dep-chat/chat/completions"
    assert first.query == {"api-version": "2024-10-21"}
    assert first.headers["authorization"] == f"Bearer {proxy.credential.token}"
    assert "api-key" not in first.headers
    assert proxy.credential.scopes == [("https://cognitiveservices.azure.com/.default",)]  # cached once
    assert second.headers["authorization"] == first.headers["authorization"]


async def test_key_vault_key_is_read_once_and_sent_upstream(proxy: Harness) -> None:
    async with proxy.openai() as client:
        for _ in range(3):
            await client.chat.completions.create(model="mock-kv", messages=MESSAGES)
    assert proxy.secrets.reads == ["upstream-key"]
    assert {r.headers["authorization"] for r in proxy.upstream.received} == {
        "Bearer sk-upstream-secret-kept-in-key-vault-0123456789"
    }
