"""The Responses API through the unmodified openai SDK: answers, streams, usage to the token, and `store`."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import openai
import pytest

from limits.plans import Plan
from localdev.mock_upstream import DEFAULT_REPLY
from tests.proxy.conftest import IN_PLAN, PLAN, Harness
from tests.proxy.fakes import CALLER_KEY
from usage.records import UsageRecord

WORDS = len(DEFAULT_REPLY.split(" "))
INPUT = "Say hello to the proxy."


def assert_usage(record: UsageRecord, usage: object) -> None:
    assert usage is not None
    assert record.prompt_tokens == usage.input_tokens  # type: ignore[attr-defined]
    assert record.completion_tokens == usage.output_tokens  # type: ignore[attr-defined]
    assert record.total_tokens == usage.total_tokens  # type: ignore[attr-defined]
    assert record.cached_tokens == usage.input_tokens_details.cached_tokens  # type: ignore[attr-defined]
    assert record.reasoning_tokens == usage.output_tokens_details.reasoning_tokens  # type: ignore[attr-defined]
    assert record.estimated is False and record.endpoint == "/v1/responses"


async def test_a_response_and_its_usage_match_the_upstream(proxy: Harness) -> None:
    proxy.mock.cached_tokens, proxy.mock.reasoning_tokens = 2, 7
    async with proxy.openai() as client:
        raw = await client.responses.with_raw_response.create(model="mock-chat", input=INPUT, instructions="Be brief.")
    response = raw.parse()
    assert response.output_text == DEFAULT_REPLY and response.model == "mock-model"
    [record] = proxy.sink.records
    assert_usage(record, response.usage)
    assert record.reasoning_tokens == 7 and record.completion_tokens == WORDS + 7 and record.status == 200
    assert raw.headers["x-request-id"] == record.request_id
    assert proxy.limiter.calls("settle") == [record.total_tokens]
    sent = proxy.upstream.received[-1]
    assert sent.path == "/v1/responses" and sent.body["store"] is False and sent.body["model"] == "mock-model"


async def test_a_streamed_response_is_relayed_event_by_event_and_billed_from_its_end(proxy: Harness) -> None:
    proxy.mock.reasoning_tokens = 3
    async with proxy.openai() as client:
        stream = await client.responses.create(model="mock-chat", input=INPUT, stream=True, max_output_tokens=5)
        events = [event async for event in stream]
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.incomplete"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == " ".join(
        DEFAULT_REPLY.split(" ")[:5]
    )
    [record] = proxy.sink.records
    assert_usage(record, events[-1].response.usage)  # type: ignore[union-attr]
    assert record.completion_tokens == 5 + 3 and record.status == 200


async def test_streamed_bytes_are_what_a_direct_caller_gets(proxy: Harness) -> None:
    body = {"model": "mock-model", "input": INPUT, "stream": True, "store": False}
    async with httpx.AsyncClient() as http:
        direct = await http.post(f"{proxy.upstream.base_url}/v1/responses", json=body)
        proxied = await http.post(
            f"{proxy.base_url}/v1/responses", json={**body, "model": "mock-chat"},
            headers={"authorization": f"Bearer {CALLER_KEY}"},
        )
    assert proxied.status_code == 200 and proxied.headers["content-type"].startswith("text/event-stream")
    assert proxied.content == direct.content  # nothing rewritten, nothing dropped


async def test_a_caller_that_leaves_mid_stream_is_billed_in_full(proxy: Harness) -> None:
    proxy.mock.chunk_delay_ms = 40
    async with proxy.openai() as client:
        stream = await client.responses.create(model="mock-chat", input=INPUT, stream=True)
        async for _ in stream:
            break
        await stream.close()
    [record] = proxy.sink.wait_for(1)
    assert record.status == 499 and record.estimated is False and record.completion_tokens == WORDS
    assert proxy.limiter.calls("settle") == [record.total_tokens] and proxy.limiter.calls("refund") == []


async def test_a_stream_broken_before_its_end_is_estimated_from_the_text_seen(proxy: Harness) -> None:
    proxy.mock.break_after_chunks = 6  # created, in_progress, four words
    async with proxy.openai() as client:
        stream = await client.responses.create(model="mock-chat", input=INPUT, stream=True)
        with pytest.raises(openai.APIError):
            [_ async for _ in stream]
    [record] = proxy.sink.wait_for(1)
    assert record.status == 502 and record.estimated is True and 0 < record.completion_tokens < WORDS


async def test_the_reservation_covers_the_input_and_max_output_tokens(proxy: Harness) -> None:
    async with proxy.openai() as client:
        await client.responses.create(model="mock-chat", input=INPUT, max_output_tokens=300)
    [(alias, estimate)] = proxy.limiter.calls("admit")
    assert alias == "mock-chat" and 300 < estimate < 400


@pytest.mark.parametrize("asked", [{"store": True}, {"previous_response_id": "resp_1"}, {"background": True},
                                   {"conversation": "conv_1"}])
async def test_stateful_features_are_refused_unless_the_plan_allows_them(
    proxy: Harness, asked: dict[str, object]
) -> None:
    async with proxy.openai() as client:
        with pytest.raises(openai.PermissionDeniedError) as refused:
            await client.responses.create(model="mock-chat", input=INPUT, **asked)  # type: ignore[call-overload]
    error = refused.value.body
    assert isinstance(error, dict) and error["code"] == "store_not_allowed" and error["param"] == next(iter(asked))
    assert proxy.sink.records == [] and proxy.limiter.log == [] and len(proxy.upstream.received) == 0


async def test_a_plan_that_allows_storing_passes_store_through(make_proxy: Callable[..., Harness]) -> None:
    proxy = make_proxy(plans=(Plan(plan_id="test-plan", models=IN_PLAN, responses_store="allow"),))
    proxy.mock.allow_store = True
    async with proxy.openai() as client:
        await client.responses.create(model="mock-chat", input=INPUT, store=True)
        await client.responses.create(model="mock-chat", input=INPUT)
    assert [r.body.get("store") for r in proxy.upstream.received] == [True, None]
    assert len(proxy.sink.records) == 2


async def test_azure_deployments_are_called_on_the_v1_surface_with_the_deployment_as_model(proxy: Harness) -> None:
    async with proxy.openai() as client:
        await client.responses.create(model="mock-azure", input=INPUT)
    sent = proxy.upstream.received[-1]
    assert sent.path == "/openai/v1/responses" and sent.body["model"] == "dep-chat"
    assert "api-key" not in sent.headers and sent.headers["authorization"].startswith("Bearer ")
    assert proxy.sink.records[0].model_alias == "mock-azure"


@pytest.mark.parametrize(("body", "param"), [
    ({"input": INPUT}, "model"),
    ({"model": "mock-chat", "input": 3}, "input"),
    ({"model": "mock-chat", "input": INPUT, "stream": "yes"}, "stream"),
    ({"model": "mock-chat", "input": INPUT, "store": "no"}, "store"),
    ({"model": "mock-chat", "input": INPUT, "max_output_tokens": 0}, "max_output_tokens"),
    ({"model": "mock-chat", "input": INPUT, "max_output_tokens": True}, "max_output_tokens"),
])
async def test_bad_input_is_refused_with_its_param_and_nothing_happens(
    proxy: Harness, body: dict[str, object], param: str
) -> None:
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"{proxy.base_url}/v1/responses", json=body,
                                 headers={"authorization": f"Bearer {CALLER_KEY}"})
    assert answer.status_code == 400 and answer.json()["error"]["param"] == param
    assert set(answer.json()["error"]) == {"message", "type", "param", "code"}
    assert proxy.sink.records == [] and proxy.limiter.log == [] and len(proxy.upstream.received) == 0


async def test_a_model_outside_the_plan_is_refused(proxy: Harness) -> None:
    async with proxy.openai() as client:
        with pytest.raises(openai.PermissionDeniedError):
            await client.responses.create(model="mock-unlisted", input=INPUT)
    assert proxy.sink.records == [] and "mock-unlisted" not in PLAN.models
