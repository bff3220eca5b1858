"""The model surface through `make run`-equivalent wiring: a team key on the sample "internal-unlimited" plan, the
unmodified openai SDK, the mock upstream, usage rows in Azurite and the operators' usage report."""

from __future__ import annotations

import asyncio
import io
import uuid
import wave
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import openai
import pytest

from localdev.stack import LocalStack
from tests.provisioning.service import table_rows

pytestmark = pytest.mark.e2e

# config/plans.json, plan "internal-unlimited"
IMAGE_1024 = 4000
AUDIO_SECOND = 10
CHARACTER = 0.5


def one_second_of_silence() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(1)
        sound.setframerate(8000)
        sound.writeframes(b"\x80" * 8000)
    return out.getvalue()


async def rows_of(stack: LocalStack, key_id: str, expected: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for _ in range(100):
        rows = [r for r in await table_rows(stack, "usage") if r.get("key_id") == key_id and "request_id" in r]
        if len(rows) >= expected:
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {expected} usage rows, found {len(rows)}")


async def test_responses_media_and_auto_are_metered_in_their_units(stack: LocalStack, admin: httpx.AsyncClient) -> None:
    team = f"surface-{uuid.uuid4().hex[:8]}"
    assert (await admin.post("/teams", json={"team": team, "plan_id": "internal-unlimited"})).status_code == 201
    minted = (await admin.post(f"/teams/{team}/keys", json={"description": "model surface"})).json()
    api = openai.AsyncOpenAI(base_url=f"{stack.service_url}/v1", api_key=minted["key"], max_retries=0)

    response = await api.responses.create(model="gpt-4o-mini", input="Hello")
    events = [e async for e in await api.responses.create(model="gpt-4o-mini", input="Hello", stream=True)]
    assert response.output_text and events[-1].type == "response.completed"
    image = await api.images.generate(model="gpt-image-1", prompt="A lighthouse", size="1024x1024")
    transcript = await api.audio.transcriptions.create(
        model="whisper-1", file=("hello.wav", one_second_of_silence(), "audio/wav"))
    speech = await api.audio.speech.create(model="tts-1", voice="alloy", input="Twelve chars")
    auto = await api.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "Hi"}])
    embedded = await api.embeddings.create(model="auto", input="Hi")
    assert image.data and transcript.text is not None and speech.content and embedded.data
    assert auto.headers["x-liutong-model"] == "gpt-4o-mini"
    assert "auto" in {m.id async for m in api.models.list()}

    written = await rows_of(stack, minted["key_id"], 7)
    rows = {(r["endpoint"], r["model_alias"], bool(r.get("auto"))): r for r in written}
    responses = rows["/v1/responses", "gpt-4o-mini", False]
    assert responses["total_tokens"] == response.usage.total_tokens  # type: ignore[union-attr]
    assert rows["/v1/images/generations", "gpt-image-1", False]["unit"] == "image"
    assert rows["/v1/images/generations", "gpt-image-1", False]["plan_tokens"] >= IMAGE_1024
    assert rows["/v1/audio/transcriptions", "whisper-1", False]["quantity"] == 1
    assert rows["/v1/audio/transcriptions", "whisper-1", False]["plan_tokens"] == AUDIO_SECOND
    assert rows["/v1/audio/speech", "tts-1", False]["quantity"] == len("Twelve chars")
    assert rows["/v1/audio/speech", "tts-1", False]["plan_tokens"] == len("Twelve chars") * CHARACTER
    assert ("/v1/chat/completions", "gpt-4o-mini", True) in rows
    assert ("/v1/embeddings", "text-embedding-3-small", True) in rows
    for row in rows.values():  # metadata only
        assert not {"input", "prompt", "text", "file", "voice"} & set(row)

    now = datetime.now(UTC)
    report = (await admin.get("/usage", params={
        "team": team, "group_by": "team", "granularity": "hour",
        "from": (now - timedelta(hours=1)).isoformat(), "to": (now + timedelta(minutes=5)).isoformat(),
    })).json()
    totals = report["totals"]
    assert totals["requests"] == 7 and totals["images"] == 1 and totals["audio_seconds"] == 1
    assert totals["characters"] == len("Twelve chars") and totals["auto_requests"] == 2
