"""The Responses API of the mock upstream (`POST /v1/responses`, and Azure's `/openai/v1/responses`).

Same deterministic usage as the mock's chat: input tokens are the input text length / 4 (rounded up), each
reply word one output token and one `response.output_text.delta` event. `MockConfig.reasoning_tokens` are
reported inside the output tokens, as OpenAI's reasoning models do. A request with `store: true` is refused
with 400 unless `MockConfig.allow_store`, so tests see that Liutong never lets it through by default.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from localdev.mock_wire import dumps, error, text_of, tokens_of_text


class MockUpstream(Protocol):
    """What of localdev.mock_upstream.MockUpstream the Responses endpoint uses."""

    config: Any  # MockConfig

    async def _accept(self, request: Request) -> tuple[dict[str, Any], Response | None]: ...

    def _reply_words(self, doc: dict[str, Any]) -> list[str]: ...

    async def _pace(self, sent: int) -> None: ...


def responses_routes(mock: MockUpstream) -> list[Route]:
    endpoint = _ResponsesEndpoint(mock)
    return [
        Route("/v1/responses", endpoint.create, methods=["POST"]),
        Route("/openai/v1/responses", endpoint.create, methods=["POST"]),
    ]


def _input_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        return ""
    texts = []
    for item in value:
        content = item.get("content") if isinstance(item, dict) else None
        if isinstance(content, list):
            texts.append("".join(p.get("text", "") for p in content if isinstance(p, dict)))
        else:
            texts.append(text_of(content))
    return "".join(texts)


class _ResponsesEndpoint:
    def __init__(self, mock: MockUpstream) -> None:
        self._mock = mock

    async def create(self, request: Request) -> Response:
        mock = self._mock
        doc, refusal = await mock._accept(request)
        if refusal is not None:
            return refusal
        if doc.get("store") is not False and not mock.config.allow_store:
            return error(400, "This mock stores nothing: send store false.", "invalid_request_error", "store")
        limit = doc.get("max_output_tokens")
        words = mock._reply_words({"max_tokens": limit} if isinstance(limit, int) else {})
        prompt = tokens_of_text(_input_text(doc.get("input")) + str(doc.get("instructions") or ""))
        response = self._response(doc, words, prompt)
        if doc.get("stream") is True:
            return StreamingResponse(self._events(response, words), media_type="text/event-stream")
        return Response(dumps(response), media_type="application/json")

    def _response(self, doc: dict[str, Any], words: list[str], prompt: int) -> dict[str, Any]:
        config = self._mock.config
        text = "".join(words)
        reasoning = min(config.reasoning_tokens, 10_000)
        output = len(words) + reasoning
        complete = len(words) == len(config.reply.split(" "))
        return {
            "id": "resp_" + hashlib.sha256(dumps(doc.get("input"))).hexdigest()[:24], "object": "response",
            "created_at": config.created or int(time.time()), "model": doc.get("model"),
            "status": "completed" if complete else "incomplete",
            "incomplete_details": None if complete else {"reason": "max_output_tokens"},
            "output": [{
                "type": "message", "id": "msg_mock", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }],
            "store": doc.get("store", True), "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
            "usage": {
                "input_tokens": prompt, "output_tokens": output, "total_tokens": prompt + output,
                "input_tokens_details": {"cached_tokens": min(config.cached_tokens, prompt)},
                "output_tokens_details": {"reasoning_tokens": reasoning},
            },
        }

    async def _events(self, response: dict[str, Any], words: list[str]) -> AsyncIterator[bytes]:
        started = {**response, "status": "in_progress", "output": [], "usage": None}
        frames: list[dict[str, Any]] = [
            {"type": "response.created", "response": started},
            {"type": "response.in_progress", "response": started},
        ]
        frames += [
            {"type": "response.output_text.delta", "item_id": "msg_mock", "output_index": 0, "content_index": 0,
             "delta": word}
            for word in words
        ]
        done = "response.completed" if response["status"] == "completed" else "response.incomplete"
        frames.append({"type": done, "response": response})
        for sent, frame in enumerate(frames):
            await self._mock._pace(sent)
            frame["sequence_number"] = sent
            yield b"event: " + frame["type"].encode() + b"\ndata: " + dumps(frame) + b"\n\n"
