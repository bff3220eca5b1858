"""POST /v1/audio/transcriptions and /v1/audio/speech through the openai SDK, metered per second or character."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx2
import openai
import pytest

from tests.proxy.conftest import Harness
from tests.proxy.media_fixtures import MEDIA_MODELS, MEDIA_PLAN, wav


def media_proxy(make_proxy: Callable[..., Harness], **settings: object) -> Harness:
    return make_proxy(plans=(MEDIA_PLAN,), models=MEDIA_MODELS, **settings)


async def test_a_transcription_is_billed_per_second_the_upstream_reports(make_proxy: Callable[..., Harness]) -> None:
    proxy = media_proxy(make_proxy)
    audio = wav(2.5)
    async with proxy.openai() as client:
        transcript = await client.audio.transcriptions.create(model="mock-whisper", file=("note.wav", audio))
    assert transcript.text == "Mock transcript of 2.50 seconds of audio."
    assert proxy.limiter.calls("admit") == [("mock-whisper", 30)]  # 3 seconds begun, from the WAV header
    assert proxy.limiter.calls("settle") == [30]
    [record] = proxy.sink.wait_for(1)
    assert (record.endpoint, record.unit, record.quantity, record.plan_tokens, record.estimated) == (
        "/v1/audio/transcriptions", "audio_second", 3, 30, False,
    )
    [received] = list(proxy.upstream.received)
    assert received.body["model"] == "whisper-1"  # the alias rewritten to the upstream's name
    assert received.body["file"] == f"note.wav ({len(audio)} bytes)"  # the upload itself arrived whole
    assert received.headers["content-type"].startswith("multipart/form-data; boundary=")


async def test_verbose_json_duration_bills_when_the_upstream_reports_no_usage(
    make_proxy: Callable[..., Harness],
) -> None:
    proxy = media_proxy(make_proxy)
    async with proxy.openai() as client:
        transcript = await client.audio.transcriptions.create(
            model="mock-legacy", file=("note.wav", wav(4.2)), response_format="verbose_json"
        )
    assert transcript.duration == pytest.approx(4.2)
    [record] = proxy.sink.wait_for(1)
    assert (record.quantity, record.plan_tokens, record.estimated) == (5, 50, False)


@pytest.mark.parametrize(("audio", "seconds"), [(wav(1.2), 2), (b"ID3" + b"\x00" * 47_997, 3)])
async def test_a_plain_text_transcript_is_billed_on_the_uploads_duration_marked_estimated(
    make_proxy: Callable[..., Harness], audio: bytes, seconds: int
) -> None:
    proxy = media_proxy(make_proxy)
    async with proxy.openai() as client:
        text = await client.audio.transcriptions.create(
            model="mock-whisper", file=("note.mp3", audio), response_format="text"
        )
    assert isinstance(text, str) and text.startswith("Mock transcript of")
    [record] = proxy.sink.wait_for(1)
    # A WAV header states the duration; other audio is taken at 16,000 bytes (128 kbit/s) a second.
    assert (record.unit, record.quantity, record.plan_tokens, record.estimated) == (
        "audio_second", seconds, seconds * 10, True,
    )


async def test_upstream_token_usage_bills_at_the_plans_token_rate(make_proxy: Callable[..., Harness]) -> None:
    proxy = media_proxy(make_proxy)
    async with proxy.openai() as client:
        transcript = await client.audio.transcriptions.create(model="mock-transcribe", file=("n.wav", wav(3)))
    usage = transcript.usage
    assert usage is not None and usage.type == "tokens"
    [record] = proxy.sink.wait_for(1)
    assert (record.prompt_tokens, record.completion_tokens, record.total_tokens) == (
        usage.input_tokens, usage.output_tokens, usage.total_tokens,
    )
    assert record.plan_tokens == 2 * usage.total_tokens == proxy.limiter.calls("settle")[0]
    assert (record.unit, record.quantity) == (None, 0)  # no duration was reported: the tokens bill


async def test_an_azure_deployment_transcribes_on_its_deployment_path(make_proxy: Callable[..., Harness]) -> None:
    proxy = media_proxy(make_proxy)
    async with proxy.openai() as client:
        await client.audio.transcriptions.create(model="mock-azure", file=("n.wav", wav(1)))
    [received] = list(proxy.upstream.received)
    assert received.path == "/openai/deployments/dep-chat/audio/transcriptions"
    assert received.body["model"] == "mock-azure"
    assert proxy.sink.wait_for(1)[0].plan_tokens == 10


async def test_speech_is_streamed_back_and_billed_per_input_character(make_proxy: Callable[..., Harness]) -> None:
    proxy = media_proxy(make_proxy)
    text = "The quick brown fox jumps over the lazy dog."
    async with proxy.openai() as client, client.audio.speech.with_streaming_response.create(
        model="mock-tts", voice="alloy", input=text, response_format="wav"
    ) as response:
        assert response.headers["content-type"] == "audio/wav"
        assert response.headers["x-request-id"].startswith("req_")
        chunks = [chunk async for chunk in response.iter_bytes()]
    assert sum(map(len, chunks)) == len(text) * 64
    assert proxy.limiter.calls("admit") == [("mock-tts", 22)] and proxy.limiter.calls("settle") == [22]
    [record] = proxy.sink.wait_for(1)
    assert (record.endpoint, record.status, record.unit, record.quantity, record.plan_tokens) == (
        "/v1/audio/speech", 200, "character", len(text), 22,
    )
    [received] = list(proxy.upstream.received)
    assert received.body["model"] == "tts-1" and received.body["input"] == text


async def test_speech_is_billed_once_when_the_caller_leaves_mid_stream(make_proxy: Callable[..., Harness]) -> None:
    proxy = media_proxy(make_proxy)
    proxy.mock.chunk_delay_ms = 50
    async with proxy.openai() as client, client.audio.speech.with_streaming_response.create(
        model="mock-tts", voice="alloy", input="x" * 400
    ) as response:
        async for _ in response.iter_bytes():
            break  # the caller hangs up after its first chunk of audio
    records = await asyncio.to_thread(proxy.sink.wait_for, 1)
    await asyncio.sleep(0.3)  # nothing more may arrive
    assert len(proxy.sink.records) == 1
    assert (records[0].status, records[0].quantity, records[0].plan_tokens) == (499, 400, 200)
    assert proxy.limiter.calls("settle") == [200] and proxy.limiter.calls("refund") == []


async def test_speech_broken_by_the_upstream_aborts_the_callers_stream(make_proxy: Callable[..., Harness]) -> None:
    proxy = media_proxy(make_proxy)
    proxy.mock.break_after_chunks = 2
    async with proxy.openai() as client:
        with pytest.raises(httpx2.HTTPError):
            async with client.audio.speech.with_streaming_response.create(
                model="mock-tts", voice="alloy", input="x" * 400
            ) as response:
                async for _ in response.iter_bytes():
                    pass
    [record] = await asyncio.to_thread(proxy.sink.wait_for, 1)
    assert (record.status, record.plan_tokens) == (502, 200)  # audio was delivered: the characters bill


async def test_speech_broken_before_any_audio_is_refunded(make_proxy: Callable[..., Harness]) -> None:
    proxy = media_proxy(make_proxy)
    proxy.mock.break_after_chunks = 0
    async with proxy.openai() as client:
        with pytest.raises((httpx2.HTTPError, openai.APIError)):
            response = await client.audio.speech.create(model="mock-tts", voice="alloy", input="hello")
            response.read()
    [record] = await asyncio.to_thread(proxy.sink.wait_for, 1)
    assert (record.status, record.plan_tokens) == (502, 0)
    assert proxy.limiter.calls("refund") == [None] and proxy.limiter.calls("settle") == []
