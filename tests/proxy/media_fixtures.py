"""Plans, upstream aliases and audio shared by the media endpoint tests."""

from __future__ import annotations

import io
import wave
from typing import Any

from limits.plans import Plan, UnitRates

IMAGE_RATES = {"1024x1024": 4000.0, "1792x1024": 8000.0}
GPT_IMAGE_RATES = {"auto": 6000.0, "1024x1024": 4000.0, "1536x1024": 6000.0}
MEDIA_MODELS: dict[str, Any] = {
    "mock-image": {"kind": "openai", "model": "dall-e-3"},
    "mock-gpt-image": {"kind": "openai", "model": "gpt-image-1"},
    "mock-whisper": {"kind": "openai", "model": "whisper-1"},
    "mock-legacy": {"kind": "openai", "model": "whisper-legacy"},
    "mock-transcribe": {"kind": "openai", "model": "gpt-4o-transcribe"},
    "mock-tts": {"kind": "openai", "model": "tts-1"},
}
MEDIA_PLAN = Plan(
    plan_id="test-plan",
    models=("mock-chat", "mock-azure", *MEDIA_MODELS),
    rates={"mock-transcribe": 2.0},
    unit_rates={
        "mock-image": UnitRates(image=IMAGE_RATES),
        "mock-gpt-image": UnitRates(image=GPT_IMAGE_RATES, default_size="auto"),
        # An Azure OpenAI deployment (tests.proxy.conftest): one alias is enough to prove the deployment paths.
        "mock-azure": UnitRates(image=IMAGE_RATES, audio_second=10, character=0.5),
        "mock-whisper": UnitRates(audio_second=10),
        "mock-legacy": UnitRates(audio_second=10),
        "mock-transcribe": UnitRates(audio_second=10),
        "mock-tts": UnitRates(character=0.5),
    },
    max_images_per_request=3,
)


def wav(seconds: float, rate: int = 8000) -> bytes:
    """Silence: mono, 8-bit, `rate` frames a second."""
    out = io.BytesIO()
    with wave.open(out, "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(1)
        sound.setframerate(rate)
        sound.writeframes(b"\x80" * int(seconds * rate))
    return out.getvalue()
