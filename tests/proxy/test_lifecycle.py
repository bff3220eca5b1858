"""Model lifecycle through the unmodified openai SDK: deprecation headers, /v1/models dates, sunset 404s, redirects."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import openai
import pytest

from limits.plans import Plan
from tests.proxy.conftest import IN_PLAN, Harness
from tests.proxy.fakes import RATE_HEADERS

MESSAGES = [{"role": "user", "content": "Say hello to the proxy."}]
DEPRECATED = datetime(2026, 3, 1, tzinfo=UTC)
SUNSET = DEPRECATED + timedelta(days=45)
BEFORE, DURING, AFTER = DEPRECATED - timedelta(seconds=1), DEPRECATED + timedelta(days=1), SUNSET
MODELS: dict[str, Any] = {
    "old-chat": {"kind": "openai", "model": "old-model", "deprecated_at": DEPRECATED.isoformat(),
                 "sunset_at": SUNSET.isoformat(), "replacement": "mid-chat"},
    "mid-chat": {"kind": "openai", "model": "mid-model", "deprecated_at": DEPRECATED.isoformat(),
                 "sunset_at": (SUNSET + timedelta(days=1)).isoformat(), "replacement": "new-chat"},
    "new-chat": {"kind": "openai", "model": "new-model"},
    "gone-chat": {"kind": "openai", "model": "gone-model", "deprecated_at": DEPRECATED.isoformat(),
                  "sunset_at": SUNSET.isoformat()},
}
ALIASES = ("old-chat", "mid-chat", "new-chat", "gone-chat")


def plan(*, redirect: bool = False, models: tuple[str, ...] = ALIASES) -> Plan:
    return Plan(plan_id="test-plan", models=(*IN_PLAN, *models), redirect_on_sunset=redirect)


@pytest.fixture
def at(make_proxy: Callable[..., Harness]) -> Callable[..., Harness]:
    def build(now: datetime, **plan_values: Any) -> Harness:
        return make_proxy(plans=(plan(**plan_values),), models=MODELS, clock=lambda: now)

    return build


def assert_nothing_billed(proxy: Harness) -> None:
    assert proxy.sink.records == [] and proxy.limiter.log == [] and not proxy.upstream.received


async def test_before_the_deprecation_nothing_is_said(at: Callable[..., Harness]) -> None:
    proxy = at(BEFORE)
    async with proxy.openai() as client:
        raw = await client.chat.completions.with_raw_response.create(model="old-chat", messages=MESSAGES)
        models = {m.id: m.model_dump() async for m in client.models.list()}
    assert "deprecation" not in raw.headers and "sunset" not in raw.headers
    assert "deprecated_at" not in models["old-chat"] and "sunset_at" not in models["old-chat"]


async def test_deprecated_answers_carry_deprecation_and_sunset(at: Callable[..., Harness]) -> None:
    proxy = at(DURING)
    async with proxy.openai() as client:
        raw = await client.chat.completions.with_raw_response.create(model="old-chat", messages=MESSAGES)
        stream = await client.chat.completions.with_raw_response.create(
            model="old-chat", messages=MESSAGES, stream=True
        )
        [_ async for _ in stream.parse()]
        plain = await client.chat.completions.with_raw_response.create(model="new-chat", messages=MESSAGES)
    for response in (raw, stream):
        assert response.headers["deprecation"] == f"@{int(DEPRECATED.timestamp())}"
        assert response.headers["sunset"] == "Wed, 15 Apr 2026 00:00:00 GMT"
        assert response.headers["x-ratelimit-limit-requests"] == RATE_HEADERS["x-ratelimit-limit-requests"]
    assert "deprecation" not in plain.headers
    assert [r.model_alias for r in proxy.sink.wait_for(3)] == ["old-chat", "old-chat", "new-chat"]
    assert proxy.upstream.received[0].body["model"] == "old-model"


async def test_models_show_the_dates_and_the_replacement(at: Callable[..., Harness]) -> None:
    proxy = at(DURING)
    async with proxy.openai() as client:
        models = {m.id: m.model_dump() async for m in client.models.list()}
    assert {k: models["old-chat"][k] for k in ("deprecated_at", "sunset_at", "replacement")} == {
        "deprecated_at": int(DEPRECATED.timestamp()), "sunset_at": int(SUNSET.timestamp()), "replacement": "mid-chat",
    }
    assert "replacement" not in models["gone-chat"] and "deprecated_at" not in models["new-chat"]
    assert "auto" not in models


async def test_after_the_sunset_a_404_names_the_replacement(at: Callable[..., Harness]) -> None:
    proxy = at(AFTER)
    async with proxy.openai() as client:
        with pytest.raises(openai.NotFoundError) as old:
            await client.chat.completions.create(model="old-chat", messages=MESSAGES)
        with pytest.raises(openai.NotFoundError) as gone:
            await client.chat.completions.create(model="gone-chat", messages=MESSAGES)
        models = {m.id async for m in client.models.list()}
    assert old.value.code == "model_not_found" and old.value.param == "model"
    assert "'mid-chat'" in old.value.message and "2026-04-15" in old.value.message
    assert gone.value.code == "model_not_found" and "instead" not in gone.value.message
    assert {"old-chat", "gone-chat"}.isdisjoint(models) and {"mid-chat", "new-chat"} <= models
    assert_nothing_billed(proxy)


async def test_a_redirecting_plan_has_the_replacement_serve_and_say_so(at: Callable[..., Harness]) -> None:
    proxy = at(AFTER, redirect=True)
    async with proxy.openai() as client:
        raw = await client.chat.completions.with_raw_response.create(model="old-chat", messages=MESSAGES)
        with pytest.raises(openai.NotFoundError):  # no replacement: nothing to redirect to
            await client.chat.completions.create(model="gone-chat", messages=MESSAGES)
    assert raw.headers["x-liutong-redirected-from"] == "old-chat"
    assert raw.headers["deprecation"] == f"@{int(DEPRECATED.timestamp())}"  # mid-chat's own notice
    [record] = proxy.sink.records
    assert record.model_alias == "mid-chat" and record.status == 200 and record.auto is False
    assert proxy.limiter.calls("admit")[0][0] == "mid-chat"
    assert proxy.upstream.received[0].body["model"] == "mid-model"


async def test_redirects_follow_replacements_that_are_sunset_too(at: Callable[..., Harness]) -> None:
    proxy = at(SUNSET + timedelta(days=2), redirect=True)
    async with proxy.openai() as client:
        raw = await client.chat.completions.with_raw_response.create(model="old-chat", messages=MESSAGES)
    assert raw.headers["x-liutong-redirected-from"] == "old-chat" and "deprecation" not in raw.headers
    assert [r.model_alias for r in proxy.sink.records] == ["new-chat"]
    assert proxy.upstream.received[0].body["model"] == "new-model"


async def test_a_redirect_to_a_model_outside_the_plan_is_refused(at: Callable[..., Harness]) -> None:
    proxy = at(AFTER, redirect=True, models=("old-chat",))
    async with proxy.openai() as client:
        with pytest.raises(openai.PermissionDeniedError) as refused:
            await client.chat.completions.create(model="old-chat", messages=MESSAGES)
    assert refused.value.code == "model_not_found" and refused.value.param == "model"
    assert "'mid-chat'" in refused.value.message
    assert_nothing_billed(proxy)
