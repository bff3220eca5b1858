"""POST /v1/images/generations through the openai SDK: metered per image at its size's rate."""

from __future__ import annotations

import base64
from collections.abc import Callable

import openai
import pytest

from tests.proxy.conftest import Harness
from tests.proxy.media_fixtures import MEDIA_MODELS, MEDIA_PLAN


def media_proxy(make_proxy: Callable[..., Harness]) -> Harness:
    return make_proxy(plans=(MEDIA_PLAN,), models=MEDIA_MODELS)


async def test_images_are_billed_per_image_at_the_sizes_rate(make_proxy: Callable[..., Harness]) -> None:
    proxy = media_proxy(make_proxy)
    async with proxy.openai() as client:
        raw = await client.images.with_raw_response.generate(
            model="mock-image", prompt="a lighthouse at dusk", n=2, size="1792x1024", response_format="b64_json"
        )
    images = raw.parse()
    assert [base64.b64decode(i.b64_json or "")[:8] for i in images.data] == [b"\x89PNG\r\n\x1a\n"] * 2
    assert raw.headers["x-request-id"].startswith("req_") and raw.headers["x-ratelimit-limit-requests"] == "600"
    assert proxy.limiter.calls("admit") == [("mock-image", 16000)]
    assert proxy.limiter.calls("settle") == [16000]
    [record] = proxy.sink.wait_for(1)
    assert (record.endpoint, record.model_alias, record.status) == ("/v1/images/generations", "mock-image", 200)
    assert (record.unit, record.quantity, record.plan_tokens, record.estimated) == ("image", 2, 16000, False)
    [received] = list(proxy.upstream.received)
    assert received.path == "/v1/images/generations"
    assert received.body["model"] == "dall-e-3" and received.body["size"] == "1792x1024"


async def test_a_request_without_size_gets_the_plans_default_size(make_proxy: Callable[..., Harness]) -> None:
    proxy = media_proxy(make_proxy)
    async with proxy.openai() as client:
        images = await client.images.generate(model="mock-image", prompt="a lighthouse", response_format="url")
    assert images.data[0].url is not None
    [received] = list(proxy.upstream.received)
    assert received.body["size"] == "1024x1024"  # the first size the plan lists, sent explicitly
    assert proxy.limiter.calls("settle") == [4000]
    assert proxy.sink.wait_for(1)[0].quantity == 1


async def test_auto_size_reserves_the_auto_rate_and_settles_at_the_size_the_upstream_chose(
    make_proxy: Callable[..., Harness],
) -> None:
    proxy = media_proxy(make_proxy)
    async with proxy.openai() as client:
        images = await client.images.generate(model="mock-gpt-image", prompt="a lighthouse", n=3)
    assert images.size == "1024x1024" and len(images.data) == 3
    assert proxy.limiter.calls("admit") == [("mock-gpt-image", 18000)]
    assert proxy.limiter.calls("settle") == [12000]
    [record] = proxy.sink.wait_for(1)
    assert (record.unit, record.quantity, record.plan_tokens) == ("image", 3, 12000)
    # The upstream's own token count is recorded beside the units that bill.
    assert record.completion_tokens == 3 * 272 and record.total_tokens == record.prompt_tokens + 3 * 272


async def test_an_azure_deployment_is_called_on_its_deployment_path(make_proxy: Callable[..., Harness]) -> None:
    proxy = media_proxy(make_proxy)
    async with proxy.openai() as client:
        await client.images.generate(model="mock-azure", prompt="a lighthouse", size="1024x1024")
    [received] = list(proxy.upstream.received)
    assert received.path == "/openai/deployments/dep-chat/images/generations"
    assert received.query["api-version"] == "2024-10-21"
    assert received.body["model"] == "mock-azure"  # the deployment in the path names the model
    assert received.headers["authorization"].startswith("Bearer ") and "api-key" not in received.headers
    assert proxy.sink.wait_for(1)[0].plan_tokens == 4000


async def test_an_upstream_failure_refunds_and_records_no_units(make_proxy: Callable[..., Harness]) -> None:
    proxy = media_proxy(make_proxy)
    proxy.mock.fail_status = 500
    async with proxy.openai() as client:
        with pytest.raises(openai.InternalServerError):
            await client.images.generate(model="mock-image", prompt="a lighthouse")
    assert proxy.limiter.calls("refund") == [None] and proxy.limiter.calls("settle") == []
    [record] = proxy.sink.wait_for(1)
    assert (record.status, record.plan_tokens, record.unit, record.quantity) == (500, 0, None, 0)
