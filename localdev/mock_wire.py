"""What the mock upstream's endpoints share: compact JSON, OpenAI error bodies, the deterministic token count."""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.responses import JSONResponse


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def tokens_of_text(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def error(status: int, message: str, kind: str, code: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": code}}, status_code=status)
