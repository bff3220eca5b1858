"""Request bodies of the media endpoints, checked against the plan before anything is admitted or billed.

Only what Liutong meters or must refuse is read: model, n, size, response_format, the speech input's length,
the upload's size and (for a WAV file) its duration. The prompt, input text and audio are never kept.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

import orjson

from core.errors import InvalidRequest
from limits.plans import Plan, UnitRates
from proxy.multipart import Form, parse_form
from proxy.payloads import optional_field, parse_object

IMAGE_FORMATS = ("url", "b64_json")
TRANSCRIPT_FORMATS = ("json", "text", "srt", "verbose_json", "vtt", "diarized_json")
SPEECH_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
SPEECH_STREAM_FORMATS = ("audio", "sse")
# OpenAI's own bound on speech input.
MAX_SPEECH_CHARS = 4096
# When neither the upstream nor a WAV header tells the duration: 128 kbit/s, a common upload's bitrate.
AUDIO_BYTES_PER_SECOND = 16_000


@dataclass(frozen=True)
class ImageRequest:
    body: bytes  # what goes upstream
    size: str
    n: int
    rates: UnitRates


@dataclass(frozen=True)
class TranscriptionRequest:
    body: bytes
    content_type: str
    response_format: str
    estimated_seconds: int
    rate: float


@dataclass(frozen=True)
class SpeechRequest:
    body: bytes
    characters: int
    rate: float


def _model(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidRequest("You must provide a model parameter.", param="model", code="invalid_type")
    return value


def _choice(value: Any, allowed: tuple[str, ...], param: str) -> None:
    if value is not None and value not in allowed:
        raise InvalidRequest(
            f"Invalid value for '{param}': expected one of {', '.join(allowed)}.", param=param, code="invalid_value"
        )


def _no_stream(value: Any) -> None:
    if value not in (None, False, "false"):
        raise InvalidRequest("Streaming is not supported on this endpoint.", param="stream", code="unsupported_value")


def _unmetered(what: str) -> InvalidRequest:
    return InvalidRequest(f"This model is not available for {what} on your plan.", param="model",
                          code="model_not_supported")


def image_model(raw: bytes, content_type: str | None) -> tuple[dict[str, Any], str]:
    doc = parse_object(raw, content_type)
    prompt = doc.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise InvalidRequest("'prompt' must be a non-empty string.", param="prompt", code="invalid_type")
    _choice(doc.get("response_format"), IMAGE_FORMATS, "response_format")
    _no_stream(doc.get("stream"))
    return doc, _model(doc.get("model"))


def image_request(doc: dict[str, Any], plan: Plan, alias: str, upstream_model: str | None) -> ImageRequest:
    rates = plan.unit_rates.get(alias)
    if rates is None or not rates.image:
        raise _unmetered("image generation")
    n = optional_field(doc, "n", int, "an integer")
    if n is not None and not 1 <= n <= plan.max_images_per_request:
        raise InvalidRequest(f"'n' must be between 1 and {plan.max_images_per_request} on your plan.", param="n",
                             code="invalid_value")
    size = optional_field(doc, "size", str, "a string") or rates.image_default_size
    if size not in rates.image:
        raise InvalidRequest(f"'size' must be one of {', '.join(rates.image)} on your plan.", param="size",
                             code="invalid_value")
    changes: dict[str, Any] = {"size": size}
    if upstream_model is not None:
        changes["model"] = upstream_model
    return ImageRequest(orjson.dumps({**doc, **changes}), size, n or 1, rates)


def transcription_form(raw: bytes, content_type: str | None) -> tuple[Form, str]:
    form = parse_form(raw, content_type)
    audio = form.part("file")
    if audio is None or audio.filename is None or audio.end == audio.start:
        raise InvalidRequest("'file' must be a non-empty audio file.", param="file", code="invalid_value")
    _choice(form.text("response_format"), TRANSCRIPT_FORMATS, "response_format")
    _no_stream(form.text("stream"))
    return form, _model(form.text("model"))


def transcription_request(form: Form, plan: Plan, alias: str, upstream_model: str | None) -> TranscriptionRequest:
    rates = plan.unit_rates.get(alias)
    if rates is None or rates.audio_second is None:
        raise _unmetered("transcription")
    body = form.raw
    model = form.part("model")
    if upstream_model is not None and model is not None and form.content(model) != upstream_model.encode():
        body = form.replaced(model, upstream_model.encode())
    audio = form.part("file")
    assert audio is not None  # checked by transcription_form
    return TranscriptionRequest(
        body, form.content_type, form.text("response_format") or "json",
        math.ceil(audio_seconds(form.content(audio))), rates.audio_second,
    )


def speech_request(raw: bytes, content_type: str | None) -> tuple[dict[str, Any], str]:
    doc = parse_object(raw, content_type)
    text = doc.get("input")
    if not isinstance(text, str) or not text:
        raise InvalidRequest("'input' must be a non-empty string.", param="input", code="invalid_type")
    if len(text) > MAX_SPEECH_CHARS:
        raise InvalidRequest(f"'input' must be at most {MAX_SPEECH_CHARS} characters.", param="input",
                             code="string_above_max_length")
    _choice(doc.get("response_format"), SPEECH_FORMATS, "response_format")
    _choice(doc.get("stream_format"), SPEECH_STREAM_FORMATS, "stream_format")
    return doc, _model(doc.get("model"))


def speech_body(doc: dict[str, Any], raw: bytes, plan: Plan, alias: str, upstream_model: str | None) -> SpeechRequest:
    rates = plan.unit_rates.get(alias)
    if rates is None or rates.character is None:
        raise _unmetered("speech")
    body = raw if upstream_model is None else orjson.dumps({**doc, "model": upstream_model})
    return SpeechRequest(body, len(doc["input"]), rates.character)


def audio_seconds(audio: bytes) -> float:
    """The duration a WAV header states, else one estimated from the size."""
    return wav_seconds(audio) or len(audio) / AUDIO_BYTES_PER_SECOND


def wav_seconds(audio: bytes) -> float | None:
    if len(audio) < 12 or audio[:4] != b"RIFF" or audio[8:12] != b"WAVE":
        return None
    at, byte_rate = 12, 0
    while at + 8 <= len(audio):
        chunk, size = audio[at:at + 4], struct.unpack_from("<I", audio, at + 4)[0]
        if chunk == b"fmt " and size >= 16 and at + 20 <= len(audio):
            byte_rate = struct.unpack_from("<I", audio, at + 16)[0]
        elif chunk == b"data" and byte_rate:
            # A streamed WAV may state no real size (0 or 0xFFFFFFFF): what follows is the data.
            present = len(audio) - at - 8
            return (min(size, present) if size else present) / byte_rate
        at += 8 + size + (size & 1)
    return None
