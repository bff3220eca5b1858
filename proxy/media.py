"""The media endpoints: image generation, audio transcription and speech, metered in the plan's units.

Each call takes ProxyService's steps (route, admit, send) and settles at what its units cost:
- images: per image returned, at the rate of its size;
- transcriptions: per audio second (the upstream's `usage.seconds`, verbose_json's `duration`, else the
  upload's WAV header or size), or at the plan's token rate when the upstream reports tokens;
- speech: per character of input, known before the call; the audio is streamed through untouched.
The records carry the unit and quantity only, never the prompt, audio, image or text.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from core.errors import LiutongError
from keystore.principal import Principal
from proxy.accounting import Tokens, from_usage
from proxy.forwarding import FAILURES, read_all
from proxy.media_payloads import (
    ImageRequest,
    TranscriptionRequest,
    image_model,
    image_request,
    speech_body,
    speech_request,
    transcription_form,
    transcription_request,
)
from proxy.metered_call import BROKEN_STREAM_STATUS, CALLER_GONE_STATUS, MeteredCall, Units
from proxy.nature import RequestNature
from proxy.registry import IMAGES, JSON, SPEECH, TRANSCRIPTIONS
from proxy.service import ProxyService

logger = logging.getLogger("liutong.proxy")

IMAGES_ENDPOINT = "/v1/images/generations"
TRANSCRIPTIONS_ENDPOINT = "/v1/audio/transcriptions"
SPEECH_ENDPOINT = "/v1/audio/speech"


@dataclass(frozen=True)
class MediaResult:
    body: bytes
    media_type: str
    headers: dict[str, str]


@dataclass(frozen=True)
class AudioStream:
    relay: AudioRelay
    media_type: str
    headers: dict[str, str]


def unit_tokens(quantity: int, rate: float) -> int:
    """Plan tokens of `quantity` units (rounded up so a rate never bills less than used)."""
    return math.ceil(quantity * rate)


class MediaCalls:
    def __init__(self, service: ProxyService) -> None:
        self._service = service

    async def images(self, principal: Principal, raw: bytes, content_type: str | None) -> MediaResult:
        doc, model = image_model(raw, content_type)
        service = self._service
        with service.counting_refusals(principal):
            route = service.route(principal, model, RequestNature(IMAGES_ENDPOINT))
            request = image_request(doc, route.plan, route.alias, route.target.model_for(IMAGES))
            estimate = unit_tokens(request.n, request.rates.image[request.size])
            call = await service.admit(principal, route, IMAGES_ENDPOINT, 0, 0, estimated_plan_tokens=estimate)
        response = await service.send(call, route, IMAGES, request.body, stream=False)
        body, media_type = await _read(call, response)
        tokens, units = image_units(_json(body), request)
        await call.succeeded(tokens, units=units)
        return MediaResult(body, media_type, call.headers)

    async def transcriptions(self, principal: Principal, raw: bytes, content_type: str | None) -> MediaResult:
        form, model = transcription_form(raw, content_type)
        service = self._service
        with service.counting_refusals(principal):
            route = service.route(principal, model, RequestNature(TRANSCRIPTIONS_ENDPOINT, has_audio=True))
            request = transcription_request(form, route.plan, route.alias, route.target.model_for(TRANSCRIPTIONS))
            estimate = unit_tokens(request.estimated_seconds, request.rate)
            call = await service.admit(
                principal, route, TRANSCRIPTIONS_ENDPOINT, 0, 0, estimated_plan_tokens=estimate
            )
        response = await service.send(
            call, route, TRANSCRIPTIONS, request.body, stream=False, content_type=request.content_type,
            accept=JSON if request.response_format.endswith("json") else "text/plain",
        )
        body, media_type = await _read(call, response)
        tokens, units = transcription_units(_json(body), request, call)
        await call.succeeded(tokens, units=units)
        return MediaResult(body, media_type, call.headers)

    async def speech(self, principal: Principal, raw: bytes, content_type: str | None) -> AudioStream:
        doc, model = speech_request(raw, content_type)
        service = self._service
        with service.counting_refusals(principal):
            route = service.route(principal, model, RequestNature(SPEECH_ENDPOINT))
            request = speech_body(doc, raw, route.plan, route.alias, route.target.model_for(SPEECH))
            units = Units("character", request.characters, unit_tokens(request.characters, request.rate))
            call = await service.admit(principal, route, SPEECH_ENDPOINT, 0, 0, estimated_plan_tokens=units.plan_tokens)
        response = await service.send(call, route, SPEECH, request.body, stream=True, accept="*/*")
        media_type = response.headers.get("content-type", "application/octet-stream")
        relay = AudioRelay(call, response, units, background=service.background)
        return AudioStream(relay, media_type, call.headers)


async def _read(call: MeteredCall, response: aiohttp.ClientResponse) -> tuple[bytes, str]:
    media_type = response.headers.get("content-type", JSON)
    try:
        return await read_all(response), media_type
    except LiutongError as error:
        await call.failed(error.status_code)
        error.headers = {**call.headers, **error.headers}
        raise


def _json(body: bytes) -> dict[str, Any] | None:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def image_units(answer: dict[str, Any] | None, request: ImageRequest) -> tuple[Tokens, Units]:
    """The images the answer holds, at their size's rate; `n` of them when the answer cannot be read."""
    data = answer.get("data") if answer is not None else None
    if not isinstance(data, list):
        count, tokens = request.n, Tokens(estimated=True)
    else:
        count, tokens = len(data), from_usage(answer.get("usage") if answer else None) or Tokens()
    size = request.size
    if answer is not None and answer.get("size") in request.rates.image:
        size = answer["size"]  # "auto" resolved by the upstream
    return tokens, Units("image", count, unit_tokens(count, request.rates.image[size]))


def transcription_units(
    answer: dict[str, Any] | None, request: TranscriptionRequest, call: MeteredCall
) -> tuple[Tokens, Units | None]:
    usage = answer.get("usage") if answer is not None else None
    usage = usage if isinstance(usage, dict) else {}
    duration = usage.get("seconds") if usage.get("type") == "duration" else (answer or {}).get("duration")
    seconds = _whole_seconds(duration)
    tokens = from_usage(usage) if usage.get("type") == "tokens" else None
    if tokens is not None:
        billed = call.plan.plan_tokens(call.model_alias, tokens.total)
        return tokens, Units("audio_second", seconds, billed) if seconds is not None else None
    if seconds is None:
        return Tokens(estimated=True), Units(
            "audio_second", request.estimated_seconds, unit_tokens(request.estimated_seconds, request.rate)
        )
    return Tokens(), Units("audio_second", seconds, unit_tokens(seconds, request.rate))


def _whole_seconds(value: Any) -> int | None:
    """Seconds as billed: every second begun counts."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
        return math.ceil(value)
    return None


class UpstreamAudioBroken(Exception):
    """Raised inside the audio stream so the server aborts the caller's connection: the audio is incomplete."""


class AudioRelay:
    """Audio bytes from the upstream to the caller; the call is recorded exactly once however it ends."""

    def __init__(
        self, call: MeteredCall, response: aiohttp.ClientResponse, units: Units, *, background: set[asyncio.Task[None]]
    ) -> None:
        self._call = call
        self._background = background  # the service's: its close() waits for accounting still under way
        self._response = response
        self._units = units
        self._sent = False
        self._over = False  # the upstream's answer was read to its end
        self._broken = False
        self._ended = False

    async def body(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._relay():
                yield chunk
            end = self.caller_done()
            if end is not None:
                await asyncio.shield(end)  # recorded before the caller's stream closes
        finally:
            self.caller_done()

    async def _relay(self) -> AsyncIterator[bytes]:
        content = self._response.content
        try:
            while data := await content.readany():
                self._sent = True
                yield data
        except FAILURES as error:
            self._broken = True
            logger.warning("speech %s: the upstream broke off (%s)", self._call.request_id, type(error).__name__)
            raise UpstreamAudioBroken from None
        self._over = True

    def caller_done(self) -> asyncio.Task[None] | None:
        """Starts the accounting unless it started already."""
        if self._ended:
            return None
        self._ended = True
        task = asyncio.get_running_loop().create_task(self._finish())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _finish(self) -> None:
        if self._over:
            self._response.release()
        else:
            self._response.close()  # the rest of the audio is not needed: the bill does not depend on it
        if self._broken and not self._sent:
            await self._call.failed(BROKEN_STREAM_STATUS)
            return
        status = 200 if self._over else BROKEN_STREAM_STATUS if self._broken else CALLER_GONE_STATUS
        await self._call.succeeded(Tokens(), status=status, units=self._units)


class AudioStreamingResponse(StreamingResponse):
    def __init__(self, stream: AudioStream) -> None:
        super().__init__(stream.relay.body(), headers=stream.headers, media_type=stream.media_type)
        self._relay = stream.relay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # A disconnect may cancel the stream without closing its generator: account now all the same.
            self._relay.caller_done()
