"""Media requests refused before admission: 400/413 OpenAI-style errors naming the param, nothing billed or kept."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from pydantic import ValidationError

from limits.plans import Plan, UnitRates
from tests.proxy.conftest import Harness
from tests.proxy.fakes import CALLER_KEY
from tests.proxy.media_fixtures import MEDIA_MODELS, MEDIA_PLAN, wav


def media_proxy(make_proxy: Callable[..., Harness], **settings: Any) -> Harness:
    return make_proxy(plans=(MEDIA_PLAN,), models=MEDIA_MODELS, **settings)


def assert_nothing_billed(proxy: Harness) -> None:
    assert proxy.limiter.log == [] and proxy.sink.records == [] and list(proxy.upstream.received) == []


async def refused(proxy: Harness, call: Callable[[openai.AsyncOpenAI], Any]) -> openai.APIStatusError:
    async with proxy.openai() as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await call(client)
    return caught.value


def error_of(refusal: openai.APIStatusError) -> tuple[int, str | None, str | None]:
    body = refusal.body if isinstance(refusal.body, dict) else {}
    return refusal.status_code, body.get("param"), body.get("code")


@pytest.mark.parametrize(("params", "param"), [
    ({"n": 4}, "n"), ({"n": 0}, "n"), ({"size": "512x512"}, "size"), ({"response_format": "png"}, "response_format"),
    ({"stream": True}, "stream"), ({"prompt": ""}, "prompt"),
])
async def test_images_outside_what_the_plan_allows_are_refused(
    make_proxy: Callable[..., Harness], params: dict[str, Any], param: str
) -> None:
    proxy = media_proxy(make_proxy)
    request = {"model": "mock-image", "prompt": "a lighthouse", **params}
    refusal = await refused(proxy, lambda client: client.images.generate(**request))
    assert error_of(refusal)[:2] == (400, param)
    assert_nothing_billed(proxy)


@pytest.mark.parametrize(("model", "status", "call"), [
    ("mock-chat", 400, "images"), ("mock-tts", 400, "transcriptions"), ("mock-whisper", 400, "speech"),
    ("mock-unlisted", 403, "speech"),
])
async def test_a_model_the_plan_does_not_meter_for_the_endpoint_is_refused(
    make_proxy: Callable[..., Harness], model: str, status: int, call: str
) -> None:
    proxy = media_proxy(make_proxy)
    calls = {
        "images": lambda c: c.images.generate(model=model, prompt="a lighthouse"),
        "transcriptions": lambda c: c.audio.transcriptions.create(model=model, file=("a.wav", wav(1))),
        "speech": lambda c: c.audio.speech.create(model=model, voice="alloy", input="hello"),
    }
    assert error_of(await refused(proxy, calls[call]))[:2] == (status, "model")
    assert_nothing_billed(proxy)


async def test_an_oversized_upload_is_refused_before_it_is_read_whole(make_proxy: Callable[..., Harness]) -> None:
    proxy = media_proxy(make_proxy, proxy_max_upload_bytes=16_000)
    audio = ("a.wav", wav(3))
    refusal = await refused(proxy, lambda c: c.audio.transcriptions.create(model="mock-whisper", file=audio))
    assert error_of(refusal) == (413, "file", "file_too_large")
    assert_nothing_billed(proxy)


@pytest.mark.parametrize(("content", "content_type"), [
    (b'{"model": "mock-whisper"}', "application/json"),
    (b"--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nmock-whisper", "multipart/form-data; boundary=b"),
    (b"--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nmock-whisper\r\n--b--", "multipart/form-data"),
])
async def test_a_body_that_is_not_a_whole_multipart_form_is_refused(
    make_proxy: Callable[..., Harness], content: bytes, content_type: str
) -> None:
    proxy = media_proxy(make_proxy)
    async with httpx.AsyncClient(base_url=f"{proxy.base_url}/v1") as http:
        response = await http.post("/audio/transcriptions", content=content, headers={
            "authorization": f"Bearer {CALLER_KEY}", "content-type": content_type,
        })
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "file"
    assert_nothing_billed(proxy)


@pytest.mark.parametrize(("params", "param"), [
    ({"response_format": "xml"}, "response_format"), ({"file": ("empty.wav", b"")}, "file"),
    ({"model": ""}, "model"), ({"stream": True}, "stream"),
])
async def test_transcriptions_with_bad_fields_are_refused(
    make_proxy: Callable[..., Harness], params: dict[str, Any], param: str
) -> None:
    proxy = media_proxy(make_proxy)
    request = {"model": "mock-whisper", "file": ("a.wav", wav(1)), **params}
    refusal = await refused(proxy, lambda c: c.audio.transcriptions.create(**request))
    assert error_of(refusal)[:2] == (400, param)
    assert_nothing_billed(proxy)


@pytest.mark.parametrize(("params", "param"), [
    ({"response_format": "ogg"}, "response_format"), ({"input": ""}, "input"), ({"input": "x" * 4097}, "input"),
    ({"stream_format": "chunks"}, "stream_format"),
])
async def test_speech_with_bad_fields_is_refused(
    make_proxy: Callable[..., Harness], params: dict[str, Any], param: str
) -> None:
    proxy = media_proxy(make_proxy)
    request = {"model": "mock-tts", "voice": "alloy", "input": "hello", **params}
    refusal = await refused(proxy, lambda c: c.audio.speech.create(**request))
    assert error_of(refusal)[:2] == (400, param)
    assert_nothing_billed(proxy)


async def test_no_record_or_log_line_holds_the_prompt_text_or_audio(
    make_proxy: Callable[..., Harness], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    proxy = media_proxy(make_proxy)
    secret = "zebra-secret-7f3a"
    audio = wav(1) + secret.encode()
    async with proxy.openai() as client:
        await client.images.generate(model="mock-image", prompt=f"draw {secret}")
        await client.audio.transcriptions.create(model="mock-whisper", file=("a.wav", audio), prompt=secret)
        await (await client.audio.speech.create(model="mock-tts", voice="alloy", input=secret)).aread()
    records = proxy.sink.wait_for(3)
    assert len(records) == 3
    assert secret not in repr(records) and secret not in caplog.text


def test_the_plan_refuses_unit_rates_it_cannot_apply() -> None:
    with pytest.raises(ValidationError, match="unit_rates name models"):
        Plan(plan_id="p", models=("a",), unit_rates={"b": UnitRates(character=1)})
    with pytest.raises(ValidationError, match="positive"):
        UnitRates(image={"1024x1024": 0})
    with pytest.raises(ValidationError, match="default_size"):
        UnitRates(image={"1024x1024": 1}, default_size="auto")
    with pytest.raises(ValidationError):
        Plan(plan_id="p", models=("a",), max_images_per_request=11)
