"""Auto mode: the rule (proxy.auto) case by case, and through the unmodified openai SDK end to end."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import openai
import pytest

from core.errors import InvalidRequest, PermissionDenied
from limits.plans import Plan
from proxy.auto import choose
from proxy.lifecycle import ModelEntry
from proxy.nature import RequestNature
from proxy.upstreams import UpstreamsConfig
from tests.proxy.conftest import IN_PLAN, PLAN, Harness

NOW = datetime(2026, 6, 1, tzinfo=UTC)
CHAT, RESPONSES, EMBEDDINGS = "/v1/chat/completions", "/v1/responses", "/v1/embeddings"
MESSAGES = [{"role": "user", "content": "Say hello to the proxy."}]
POOL = ("auto-small", "auto-vision", "auto-big", "auto-embed")
MODELS: dict[str, Any] = {
    "auto-small": {"kind": "openai", "model": "small-model", "context_tokens": 1000, "max_output_tokens": 200},
    "auto-vision": {"kind": "openai", "model": "vision-model", "capabilities": ["chat", "responses", "vision", "tools"],
                    "context_tokens": 8000, "max_output_tokens": 1000},
    "auto-big": {"kind": "openai", "model": "big-model",
                 "capabilities": ["chat", "responses", "vision", "audio", "tools"], "context_tokens": 100000,
                 "max_output_tokens": 8000},
    "auto-embed": {"kind": "openai", "model": "embed-model", "capabilities": ["embeddings"], "context_tokens": 8000},
}
AUTO_PLAN = Plan(plan_id="test-plan", models=(*IN_PLAN, *POOL), auto_models=POOL)


def entries_of(models: dict[str, Any]) -> dict[str, ModelEntry]:
    return UpstreamsConfig.model_validate(
        {"models": {alias: {**entry, "base_url": "http://127.0.0.1:9/v1"} for alias, entry in models.items()}}
    ).models


ENTRIES = entries_of(MODELS)
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
AUDIO = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
TOOLS = [{"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}]


def nature(endpoint: str = CHAT, **values: Any) -> RequestNature:
    return RequestNature(endpoint, **{"prompt_tokens": 10, **values})


@pytest.mark.parametrize(
    ("request_nature", "chosen"),
    [
        (nature(), "auto-small"),  # the first of the pool that fits
        (nature(RESPONSES), "auto-small"),
        (nature(EMBEDDINGS), "auto-embed"),
        (nature(has_images=True), "auto-vision"),
        (nature(has_tools=True), "auto-vision"),
        (nature(has_audio=True), "auto-big"),
        (nature(has_images=True, has_audio=True, has_tools=True), "auto-big"),
        (nature(max_output_tokens=200), "auto-small"),  # limits are inclusive
        (nature(max_output_tokens=201), "auto-vision"),
        (nature(prompt_tokens=800, max_output_tokens=200), "auto-small"),
        (nature(prompt_tokens=801, max_output_tokens=200), "auto-vision"),  # over the small context
        (nature(prompt_tokens=9000), "auto-big"),
        (nature(EMBEDDINGS, prompt_tokens=8000), "auto-embed"),
    ],
)
def test_the_rule_picks_the_first_of_the_pool_that_fits(request_nature: RequestNature, chosen: str) -> None:
    assert choose(AUTO_PLAN, request_nature, ENTRIES, NOW) == chosen


@pytest.mark.parametrize(
    "request_nature",
    [
        nature(max_output_tokens=8001),
        nature(prompt_tokens=99_000, max_output_tokens=1001),
        nature(EMBEDDINGS, prompt_tokens=8001),
        nature(EMBEDDINGS, has_images=True),
    ],
)
def test_nothing_fits_is_a_400_saying_what_was_needed(request_nature: RequestNature) -> None:
    with pytest.raises(InvalidRequest) as refused:
        choose(AUTO_PLAN, request_nature, ENTRIES, NOW)
    assert (refused.value.status_code, refused.value.param, refused.value.code) == (400, "model", "no_auto_model")
    assert f"about {request_nature.prompt_tokens} prompt tokens" in refused.value.message


@pytest.mark.parametrize("endpoint", ["/v1/images/generations", "/v1/audio/transcriptions", "/v1/audio/speech"])
def test_media_endpoints_have_no_auto_mode(endpoint: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        choose(AUTO_PLAN, nature(endpoint), ENTRIES, NOW)
    assert (refused.value.param, refused.value.code) == ("model", "auto_not_supported")


def test_a_plan_without_a_pool_is_refused() -> None:
    with pytest.raises(PermissionDenied) as refused:
        choose(PLAN, nature(), ENTRIES, NOW)
    assert (refused.value.status_code, refused.value.param, refused.value.code) == (403, "model", "auto_not_enabled")


def test_deprecated_models_are_passed_over_and_sunset_ones_never_chosen() -> None:
    dated = {"deprecated_at": (NOW - timedelta(days=1)).isoformat(),
             "sunset_at": (NOW + timedelta(days=40)).isoformat()}
    models = {**MODELS, "auto-small": {**MODELS["auto-small"], **dated}}
    entries = entries_of(models)
    assert choose(AUTO_PLAN, nature(), entries, NOW) == "auto-vision"
    only_small = AUTO_PLAN.model_copy(update={"auto_models": ("auto-small",)})
    assert choose(only_small, nature(), entries, NOW) == "auto-small"  # deprecated, but all there is
    with pytest.raises(InvalidRequest):
        choose(only_small, nature(), entries, NOW + timedelta(days=40))


def test_models_an_override_took_away_are_not_chosen() -> None:
    narrowed = AUTO_PLAN.model_copy(update={"models": ("auto-big",)})
    assert choose(narrowed, nature(), ENTRIES, NOW) == "auto-big"


# -- through the SDK ------------------------------------------------------------------------------


@pytest.fixture
def auto_proxy(make_proxy: Callable[..., Harness]) -> Harness:
    return make_proxy(plans=(AUTO_PLAN,), models=MODELS)


async def test_auto_chat_serves_from_the_chosen_model_and_says_which(auto_proxy: Harness) -> None:
    async with auto_proxy.openai() as client:
        raw = await client.chat.completions.with_raw_response.create(model="auto", messages=MESSAGES)
        vision = await client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": [{"type": "text", "text": "What is it?"}, IMAGE]}],
        )
        tools = await client.chat.completions.with_raw_response.create(
            model="auto", messages=MESSAGES, tools=TOOLS, max_tokens=50,
        )
    chosen = ["small-model", "vision-model", "vision-model"]
    assert [r.headers["x-liutong-model"] for r in (raw, vision, tools)] == chosen
    assert [received.body["model"] for received in auto_proxy.upstream.received] == chosen
    records = auto_proxy.sink.records
    assert [(r.model_alias, r.auto) for r in records] == [
        ("auto-small", True), ("auto-vision", True), ("auto-vision", True)]
    assert [alias for alias, _ in auto_proxy.limiter.calls("admit")] == ["auto-small", "auto-vision", "auto-vision"]
    assert raw.parse().choices[0].message.content


async def test_auto_streams_and_embeddings(auto_proxy: Harness) -> None:
    async with auto_proxy.openai() as client:
        stream = await client.chat.completions.with_raw_response.create(
            model="auto", messages=MESSAGES, stream=True, max_tokens=500
        )
        chunks = [chunk async for chunk in stream.parse()]
        embedded = await client.embeddings.with_raw_response.create(model="auto", input=["first", "second"])
    assert chunks and stream.headers["x-liutong-model"] == "vision-model"
    assert embedded.headers["x-liutong-model"] == "embed-model" and len(embedded.parse().data) == 2
    records = auto_proxy.sink.wait_for(2)
    assert {(r.model_alias, r.endpoint, r.auto) for r in records} == {
        ("auto-vision", CHAT, True), ("auto-embed", EMBEDDINGS, True)}


async def test_auto_with_nothing_that_fits_bills_nothing(auto_proxy: Harness) -> None:
    async with auto_proxy.openai() as client:
        with pytest.raises(openai.BadRequestError) as refused:
            await client.chat.completions.create(model="auto", messages=MESSAGES, max_tokens=50_000)
    assert (refused.value.param, refused.value.code) == ("model", "no_auto_model")
    assert auto_proxy.sink.records == [] and auto_proxy.limiter.log == [] and not auto_proxy.upstream.received


async def test_auto_on_a_plan_without_it_is_403_and_bills_nothing(make_proxy: Callable[..., Harness]) -> None:
    proxy = make_proxy(models=MODELS)
    async with proxy.openai() as client:
        with pytest.raises(openai.PermissionDeniedError) as chat:
            await client.chat.completions.create(model="auto", messages=MESSAGES)
        with pytest.raises(openai.PermissionDeniedError) as embed:
            await client.embeddings.create(model="auto", input="x")
        models = [m.id async for m in client.models.list()]
    for raised in (chat, embed):
        assert (raised.value.param, raised.value.code) == ("model", "auto_not_enabled")
    assert "auto" not in models
    assert proxy.sink.records == [] and proxy.limiter.log == [] and not proxy.upstream.received


async def test_models_lists_auto_only_for_plans_with_a_pool(auto_proxy: Harness) -> None:
    async with auto_proxy.openai() as client:
        models = [m async for m in client.models.list()]
    assert [m.id for m in models] == [*AUTO_PLAN.models, "auto"]
    assert models[-1].owned_by == "liutong" and models[-1].object == "model"
