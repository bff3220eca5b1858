"""The mock upstream's media endpoints: images, transcriptions and speech, OpenAI's and Azure's paths.

Deterministic answers: a tiny PNG per image; a transcript whose duration is the uploaded WAV's (stdlib
`wave`) or, for other audio, one second per 16,000 bytes; speech of SPEECH_BYTES_PER_CHAR bytes per input
character, streamed in chunks. Usage as OpenAI reports it: whisper-like models say `{"type": "duration"}`,
models named "…transcribe…" say `{"type": "tokens"}`, models named "…legacy…" say nothing (only
verbose_json's `duration`); gpt-image-like models add token usage and the size they chose.
The upload itself is not kept: a transcription is remembered by its fields, the file by name and size.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import math
import time
import wave
from collections import deque
from collections.abc import AsyncIterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

# A valid 1x1 transparent PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
AUDIO_BYTES_PER_SECOND = 16_000
SPEECH_BYTES_PER_CHAR = 64
SPEECH_CHUNK_BYTES = 1024
SPEECH_TYPES = {"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac",
                "wav": "audio/wav", "pcm": "audio/pcm"}
_PATHS = (("images/generations", "images"), ("audio/transcriptions", "transcriptions"), ("audio/speech", "speech"))


class Upstream(Protocol):
    """What of MockUpstream the media endpoints use (its knobs and its record of requests)."""

    config: Any  # MockConfig
    received: deque[Any]


class InjectedAudioBreak(Exception):
    """Raised inside the speech stream: uvicorn aborts the connection mid-answer."""


class MediaMock:
    def __init__(self, upstream: Upstream) -> None:
        self._upstream = upstream

    def routes(self) -> list[Route]:
        prefixes = ("/v1", "/openai/deployments/{deployment}")
        return [Route(f"{prefix}/{path}", getattr(self, name), methods=["POST"])
                for prefix in prefixes for path, name in _PATHS]

    async def images(self, request: Request) -> Response:
        doc = _json(await request.body())
        refusal = await self._refusal(request, doc)
        if refusal is not None or doc is None:
            return refusal or _error(400, "We could not parse the JSON body of your request.")
        n = doc.get("n") or 1
        as_url = doc.get("response_format") == "url"
        data = [{"url": f"https://mock-upstream.invalid/images/{i}.png"} if as_url
                else {"b64_json": base64.b64encode(PNG).decode()} for i in range(n)]
        body: dict[str, Any] = {"created": int(time.time()), "data": data}
        if "gpt-image" in str(doc.get("model") or request.path_params.get("deployment")):
            size = doc.get("size") or "auto"
            body["size"] = "1024x1024" if size == "auto" else size
            prompt = math.ceil(len(str(doc.get("prompt"))) / 4)
            body["usage"] = {"input_tokens": prompt, "output_tokens": 272 * n, "total_tokens": prompt + 272 * n,
                             "input_tokens_details": {"text_tokens": prompt, "image_tokens": 0}}
        return JSONResponse(body)

    async def transcriptions(self, request: Request) -> Response:
        form = _multipart(await request.body(), request.headers.get("content-type", ""))
        fields = {name: _content(part) for name, part in form.items()} if form else {}
        audio = fields.pop("file", None)
        remembered = {name: value.decode(errors="replace") for name, value in fields.items()}
        if form is not None and audio is not None:
            remembered["file"] = f"{form['file'].get_filename()} ({len(audio)} bytes)"
        refusal = await self._refusal(request, remembered if form else None)
        if refusal is not None or form is None or not audio:
            return refusal or _error(400, "Could not parse multipart form with a file.")
        model = remembered.get("model") or request.path_params.get("deployment") or ""
        return _transcript(model, remembered.get("response_format") or "json", _duration(audio))

    async def speech(self, request: Request) -> Response:
        doc = _json(await request.body())
        refusal = await self._refusal(request, doc)
        if refusal is not None or doc is None or not isinstance(doc.get("input"), str):
            return refusal or _error(400, "'input' is required.")
        size = len(doc["input"]) * SPEECH_BYTES_PER_CHAR
        media_type = SPEECH_TYPES.get(str(doc.get("response_format") or "mp3"), "audio/mpeg")
        return StreamingResponse(self._audio(size), media_type=media_type)

    async def _audio(self, size: int) -> AsyncIterator[bytes]:
        config = self._upstream.config
        for sent, at in enumerate(range(0, size, SPEECH_CHUNK_BYTES)):
            if sent and config.chunk_delay_ms:
                await asyncio.sleep(config.chunk_delay_ms / 1000)
            if config.break_after_chunks is not None and sent >= config.break_after_chunks:
                raise InjectedAudioBreak(f"speech broken after {sent} chunks on purpose")
            yield bytes((at + i) % 251 for i in range(min(SPEECH_CHUNK_BYTES, size - at)))

    async def _refusal(self, request: Request, remembered: Any) -> Response | None:
        """What MockUpstream's knobs answer instead (latency, injected failures), after remembering the call."""
        upstream = self._upstream
        if upstream.config.record_requests:
            upstream.received.append(_received(request, remembered))
        config = upstream.config
        if config.hang_seconds:
            await asyncio.sleep(config.hang_seconds)
        if config.latency_ms:
            await asyncio.sleep(config.latency_ms / 1000)
        if config.fail_status is not None:
            if not config.fail_openai_body:
                return PlainTextResponse("upstream exploded", status_code=config.fail_status)
            return _error(config.fail_status, f"Injected failure with status {config.fail_status}.", "injected_failure")
        if "deployment" in request.path_params and not request.query_params.get("api-version"):
            return _error(404, "Resource not found")
        return None


def _received(request: Request, body: Any) -> Any:
    from localdev.mock_upstream import ReceivedRequest  # a late lookup: mock_upstream imports this module

    return ReceivedRequest(request.method, request.url.path, dict(request.query_params), dict(request.headers), body)


def _json(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _multipart(raw: bytes, content_type: str) -> dict[str, EmailMessage] | None:
    """The form's parts by name (stdlib email: independent of the proxy's own parser)."""
    if not content_type.lower().startswith("multipart/form-data"):
        return None
    message = BytesParser(policy=policy.HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
    if not message.is_multipart():
        return None
    parts: dict[str, EmailMessage] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(part, EmailMessage) and isinstance(name, str):
            parts[name] = part
    return parts


def _content(part: EmailMessage) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _duration(audio: bytes) -> float:
    try:
        with wave.open(io.BytesIO(audio)) as sound:
            frames: int = sound.getnframes()
            rate: int = sound.getframerate()
            return frames / rate
    except (wave.Error, EOFError):
        return len(audio) / AUDIO_BYTES_PER_SECOND


def _transcript(model: str, response_format: str, duration: float) -> Response:
    text = f"Mock transcript of {duration:.2f} seconds of audio."
    if response_format in ("text", "srt", "vtt"):
        return PlainTextResponse(text)
    usage: dict[str, Any] | None = {"type": "duration", "seconds": math.ceil(duration)}
    if "transcribe" in model:
        audio_tokens = math.ceil(duration * 10)
        usage = {"type": "tokens", "input_tokens": audio_tokens, "output_tokens": len(text.split()),
                 "total_tokens": audio_tokens + len(text.split()),
                 "input_token_details": {"text_tokens": 0, "audio_tokens": audio_tokens}}
    elif "legacy" in model:
        usage = None
    body: dict[str, Any] = {"text": text}
    if response_format == "verbose_json":
        body = {"task": "transcribe", "language": "english", "duration": duration, "text": text,
                "segments": [{"id": 0, "start": 0.0, "end": duration, "text": text}]}
    if usage is not None:
        body["usage"] = usage
    return JSONResponse(body)


def _error(status: int, message: str, code: str | None = None) -> JSONResponse:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": code}}, status_code=status)
