"""An OpenAI-compatible upstream for local runs, tests and the benchmark.

Speaks the wire format of OpenAI (`/v1/chat/completions` with and without SSE streaming,
`/v1/embeddings`, `/v1/models`) and of Azure OpenAI deployments
(`/openai/deployments/{deployment}/…?api-version=`). Usage is deterministic: prompt tokens are the
message text length / 4 (rounded up), each reply word is one completion token and one stream chunk.
Knobs (MockConfig, changeable while running) add latency, per-chunk delay, cached tokens and failures.
It keeps the requests it received (headers included) so tests can see what reached the upstream.

    python -m localdev.mock_upstream --port 7073 --latency-ms 5
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import struct
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from localdev.mock_media import MediaMock
from localdev.mock_responses import responses_routes
from localdev.mock_wire import dumps as _dumps
from localdev.mock_wire import error as _error
from localdev.mock_wire import text_of as _text_of
from localdev.mock_wire import tokens_of_text as _tokens_of_text
from localdev.standin.server import base_url_of, bind, serve_in_thread

# The aliases of config/plans.json, so `make run` can serve every plan from the mock.
LOCAL_ALIASES = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")
DEFAULT_REPLY = "Hello from the Liutong mock upstream. This reply is deterministic, one token per word."


@dataclass
class MockConfig:
    latency_ms: float = 0  # before answering (the benchmark uses 5)
    chunk_delay_ms: float = 0  # between stream chunks
    reply: str = DEFAULT_REPLY
    cached_tokens: int = 0  # reported as prompt_tokens_details.cached_tokens (at most the prompt)
    embedding_dims: int = 8
    fail_status: int | None = None  # answer every call with this status
    fail_openai_body: bool = True  # …with an OpenAI error body (else plain text)
    hang_seconds: float = 0  # wait this long before answering at all
    break_after_chunks: int | None = None  # abort the connection after this many stream chunks
    stall_after_chunks: int | None = None  # then go silent for stall_seconds
    stall_seconds: float = 3600
    created: int | None = None  # fixed `created` for byte-exact comparisons; None = now
    reasoning_tokens: int = 0  # reported inside the completion/output tokens, as reasoning models do
    allow_store: bool = False  # accept Responses calls that ask the mock to store (it never does)
    record_requests: bool = True
    # Upstream model name → the only bearer key it accepts (others get 401), as a provider checks a customer's own
    # key (BYOK); GET /v1/models refuses a bearer that is none of them.
    required_keys: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


class InjectedStreamBreak(Exception):
    """Raised inside a streaming body: uvicorn aborts the connection mid-response."""


@dataclass
class MockUpstream:
    config: MockConfig = field(default_factory=MockConfig)
    received: deque[ReceivedRequest] = field(default_factory=lambda: deque(maxlen=1000))

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/openai/deployments/{deployment}/chat/completions", self.chat, methods=["POST"]),
            Route("/openai/deployments/{deployment}/embeddings", self.embeddings, methods=["POST"]),
            *MediaMock(self).routes(),  # images, transcriptions, speech
            *responses_routes(self),
        ])

    async def chat(self, request: Request) -> Response:
        doc, refusal = await self._accept(request)
        if refusal is not None:
            return refusal
        messages: list[Any] = doc["messages"] if isinstance(doc.get("messages"), list) else []
        prompt = _tokens_of_text("".join(_text_of(m.get("content")) for m in messages if isinstance(m, dict)))
        words = self._reply_words(doc)
        head = {
            "id": "chatcmpl-" + hashlib.sha256(_dumps(messages)).hexdigest()[:24],
            "created": self.config.created or int(time.time()),
            "model": request.path_params.get("deployment") or doc.get("model"),
        }
        usage = self._usage(prompt, len(words) + self.config.reasoning_tokens)
        if doc.get("stream") is True:
            include_usage = (doc.get("stream_options") or {}).get("include_usage") is True
            return StreamingResponse(self._stream(head, words, usage, include_usage), media_type="text/event-stream")
        message: dict[str, Any] = {"role": "assistant", "content": "".join(words), "refusal": None, "annotations": []}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": self._finish_reason(words)}
        body = {"id": head["id"], "object": "chat.completion", "created": head["created"], "model": head["model"],
                "choices": [choice], "usage": usage, "service_tier": "default", "system_fingerprint": "fp_mock"}
        return Response(_dumps(body), media_type="application/json")

    async def embeddings(self, request: Request) -> Response:
        doc, refusal = await self._accept(request)
        if refusal is not None:
            return refusal
        value = doc.get("input")
        inputs = value if isinstance(value, list) else [value]
        tokens = sum(len(i) if isinstance(i, list) else 1 if isinstance(i, int) else _tokens_of_text(str(i))
                     for i in inputs)
        as_base64 = doc.get("encoding_format") == "base64"
        data = [{"object": "embedding", "index": n, "embedding": self._vector(i, as_base64)}
                for n, i in enumerate(inputs)]
        model = request.path_params.get("deployment") or doc.get("model")
        body = {"object": "list", "data": data, "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        return Response(_dumps(body), media_type="application/json")

    async def models(self, request: Request) -> Response:
        self._remember(request, None)
        presented = _bearer(request)
        if presented is not None and self.config.required_keys and presented not in self.config.required_keys.values():
            return _error(401, "Incorrect API key provided.", "invalid_request_error", code="invalid_api_key")
        model = {"id": "mock-model", "object": "model", "created": 1700000000, "owned_by": "liutong-mock"}
        return JSONResponse({"object": "list", "data": [model]})

    async def _accept(self, request: Request) -> tuple[dict[str, Any], Response | None]:
        """The parsed body, or the answer to give instead (injected failure, bad request)."""
        try:
            doc = json.loads(await request.body())
        except ValueError:
            doc = None
        self._remember(request, doc)
        config = self.config
        if config.hang_seconds:
            await asyncio.sleep(config.hang_seconds)
        if config.latency_ms:
            await asyncio.sleep(config.latency_ms / 1000)
        if config.fail_status is not None:
            return {}, self._failure(config.fail_status)
        if not isinstance(doc, dict):
            return {}, _error(400, "We could not parse the JSON body of your request.", "invalid_request_error")
        required = config.required_keys.get(str(doc.get("model")))
        if required is not None and _bearer(request) != required:
            return {}, _error(401, "Incorrect API key provided.", "invalid_request_error", code="invalid_api_key")
        if "deployment" in request.path_params and not request.query_params.get("api-version"):
            return {}, _error(404, "Resource not found", "invalid_request_error")
        return doc, None

    def _remember(self, request: Request, body: Any) -> None:
        if self.config.record_requests:
            self.received.append(ReceivedRequest(
                request.method, request.url.path, dict(request.query_params), dict(request.headers), body
            ))

    def _failure(self, status: int) -> Response:
        if not self.config.fail_openai_body:
            return PlainTextResponse("upstream exploded", status_code=status)
        kind = "server_error" if status >= 500 else "invalid_request_error"
        return _error(status, f"Injected failure with status {status}.", kind, code="injected_failure")

    def _reply_words(self, doc: dict[str, Any]) -> list[str]:
        words = self.config.reply.split(" ")
        limit = doc.get("max_completion_tokens", doc.get("max_tokens"))
        if isinstance(limit, int) and not isinstance(limit, bool):
            words = words[:limit]
        return [(" " if n else "") + w for n, w in enumerate(words)]

    def _finish_reason(self, words: list[str]) -> str:
        return "length" if len(words) < len(self.config.reply.split(" ")) else "stop"

    def _usage(self, prompt: int, completion: int) -> dict[str, Any]:
        return {
            "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": min(self.config.cached_tokens, prompt), "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": min(self.config.reasoning_tokens, completion),
                                          "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
        }

    def _vector(self, item: Any, as_base64: bool) -> list[float] | str:
        digest = hashlib.sha256(_dumps(item)).digest()
        vector = [round(digest[n % len(digest)] / 255 - 0.5, 6) for n in range(self.config.embedding_dims)]
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if as_base64 else vector

    async def _stream(
        self, head: dict[str, Any], words: list[str], usage: dict[str, Any], include_usage: bool
    ) -> AsyncIterator[bytes]:
        def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            body = {"id": head["id"], "object": "chat.completion.chunk", "created": head["created"],
                    "model": head["model"], "service_tier": "default", "system_fingerprint": "fp_mock",
                    "choices": choices, **extra}
            if include_usage and "usage" not in extra:
                body["usage"] = None  # OpenAI adds it to every chunk once include_usage is on
            return b"data: " + _dumps(body) + b"\n\n"

        def delta(content: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
            return [{"index": 0, "delta": content, "logprobs": None, "finish_reason": finish}]

        frames = [chunk(delta({"role": "assistant", "content": "", "refusal": None}))]
        frames += [chunk(delta({"content": w})) for w in words]
        frames.append(chunk(delta({}, self._finish_reason(words))))
        if include_usage:
            frames.append(chunk([], usage=usage))
        frames.append(b"data: [DONE]\n\n")
        for sent, frame in enumerate(frames):
            await self._pace(sent)
            yield frame

    async def _pace(self, sent: int) -> None:
        config = self.config
        if sent and config.chunk_delay_ms:
            await asyncio.sleep(config.chunk_delay_ms / 1000)
        if config.break_after_chunks is not None and sent >= config.break_after_chunks:
            raise InjectedStreamBreak(f"stream broken after {sent} chunks on purpose")
        if config.stall_after_chunks is not None and sent == config.stall_after_chunks:
            await asyncio.sleep(config.stall_seconds)


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value if scheme.lower() == "bearer" and value else None


def upstreams_config(base_url: str, aliases: tuple[str, ...] = LOCAL_ALIASES) -> dict[str, Any]:
    """An upstreams file (proxy.upstreams) sending every alias to this mock, for local runs."""
    upstream = {"kind": "openai", "base_url": f"{base_url}/v1", "model": "mock-model"}
    return {"description": "Every alias served by the local mock upstream.",
            "models": {alias: upstream for alias in aliases}}


@dataclass
class RunningMockUpstream:
    mock: MockUpstream
    base_url: str
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def config(self) -> MockConfig:
        return self.mock.config

    @property
    def received(self) -> deque[ReceivedRequest]:
        return self.mock.received

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)

    def __enter__(self) -> RunningMockUpstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def make_server(mock: MockUpstream) -> uvicorn.Server:
    config = uvicorn.Config(mock.app(), log_level="warning", lifespan="off", access_log=False,
                            timeout_graceful_shutdown=1)
    return uvicorn.Server(config)


def start_in_thread(
    host: str = "127.0.0.1", port: int = 0, *, config: MockConfig | None = None, startup_timeout: float = 10.0
) -> RunningMockUpstream:
    """Serve on host:port (0 = any free port) in a daemon thread; returns once it accepts connections."""
    sock = bind(host, port)
    mock = MockUpstream(config or MockConfig())
    server = make_server(mock)
    thread = serve_in_thread(server, sock, name="mock-upstream", startup_timeout=startup_timeout)
    return RunningMockUpstream(mock, base_url_of(sock), server, thread)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, kind, default in (("host", str, "127.0.0.1"), ("port", int, 7073), ("latency-ms", float, 0),
                                ("chunk-delay-ms", float, 0), ("cached-tokens", int, 0)):
        parser.add_argument(f"--{name}", type=kind, default=default)
    parser.add_argument("--no-record", action="store_true", help="keep no received requests (benchmarks)")
    args = parser.parse_args(argv)
    config = MockConfig(latency_ms=args.latency_ms, chunk_delay_ms=args.chunk_delay_ms,
                        cached_tokens=args.cached_tokens, record_requests=not args.no_record)
    sock = bind(args.host, args.port)
    print(f"mock upstream on {base_url_of(sock)}/v1", flush=True)
    make_server(MockUpstream(config)).run(sockets=[sock])


if __name__ == "__main__":
    main()
