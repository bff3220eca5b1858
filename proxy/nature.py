"""What a request needs from a model, read from its body: for choosing one in auto mode (proxy.auto)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RequestNature:
    """Read from the body and never kept: no text, only what the request's shape asks of a model."""

    endpoint: str
    prompt_tokens: int = 0  # estimated from the body's size
    max_output_tokens: int | None = None
    has_images: bool = False
    has_audio: bool = False
    has_tools: bool = False
