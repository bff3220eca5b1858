"""Names every part of the proxy benchmark shares: the targets and the one chat completion they all serve."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO_ROOT / ".local" / "bench"  # .local/ is git-ignored
CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
ALIAS = "bench-chat"
PROMPT = "Say hello to the benchmark."

DIRECT = "direct (mock)"
FLOOR = "floor (pass-through)"
LIUTONG = "Liutong"
LITELLM_PREFIX = "LiteLLM"


class LegUnavailable(Exception):
    """A target that could not be started or does not answer; the run goes on without it."""


@dataclass
class Target:
    name: str
    base_url: str
    key: str | None = None
    pid: int | None = None
    # A local stand-in the target needs but Azure hosts elsewhere (Azurite for Liutong): its CPU is reported apart.
    storage_pid: int | None = None


def chat_body(stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": ALIAS, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 64}
    if stream:
        body["stream"] = True
    return body


def responses_body() -> dict[str, Any]:
    """The same question through the Responses API, streamed (store false: Liutong's default plans require it)."""
    return {"model": ALIAS, "input": PROMPT, "max_output_tokens": 64, "stream": True, "store": False}


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
