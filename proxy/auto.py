"""Auto mode: `model: "auto"` picks a model of the plan's auto pool from what the request needs. Deterministic.

The rule (README "Auto mode"):
1. The request needs a capability for its endpoint (chat, responses or embeddings) and one more for each of
   image parts (vision), audio parts (audio) and tools or functions (tools). Other endpoints have no auto mode.
2. A candidate is an alias of the plan's `auto_models` that the plan allows, that is in the upstreams file and
   not past its sunset, whose `capabilities` hold every one needed, whose `max_output_tokens` (when set) is at
   least the requested output, and whose `context_tokens` (when set) is at least the prompt estimate plus the
   requested output.
3. The first candidate in `auto_models` order that is not deprecated wins; only when every candidate is
   deprecated does the first deprecated one. The plan lists its pool cheapest first, so the cheapest model
   that can serve the request serves it.
Nothing fits: 400 `no_auto_model` with param "model", saying what the request needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from core.errors import InvalidRequest, PermissionDenied
from limits.plans import Plan
from proxy.lifecycle import ModelEntry
from proxy.nature import RequestNature
from proxy.upstreams import AUTO_ALIAS

__all__ = ["AUTO_ALIAS", "choose"]

ENDPOINT_CAPABILITY = {
    "/v1/chat/completions": "chat",
    "/v1/responses": "responses",
    "/v1/embeddings": "embeddings",
}


def needs(nature: RequestNature) -> tuple[str, ...]:
    """The capabilities a request needs, its endpoint's first."""
    endpoint = ENDPOINT_CAPABILITY.get(nature.endpoint)
    if endpoint is None:
        raise InvalidRequest(
            f"Auto mode is not available for {nature.endpoint}: name a model.", param="model",
            code="auto_not_supported",
        )
    parts = (("vision", nature.has_images), ("audio", nature.has_audio), ("tools", nature.has_tools))
    return (endpoint, *(name for name, present in parts if present))


def fits(entry: ModelEntry, nature: RequestNature, needed: tuple[str, ...]) -> bool:
    output = nature.max_output_tokens or 0
    return (
        set(needed) <= set(entry.capabilities)
        and (entry.max_output_tokens is None or output <= entry.max_output_tokens)
        and (entry.context_tokens is None or nature.prompt_tokens + output <= entry.context_tokens)
    )


def choose(plan: Plan, nature: RequestNature, entries: Mapping[str, ModelEntry], now: datetime) -> str:
    """The alias that serves an auto-mode call (see the module's rule)."""
    if not plan.auto_models:
        raise PermissionDenied("Your plan does not include auto mode: name a model.", param="model",
                               code="auto_not_enabled")
    needed = needs(nature)
    candidates = [
        alias for alias in plan.auto_models
        if plan.allows(alias) and (entry := entries.get(alias)) is not None and not entry.sunset(now)
        and fits(entry, nature, needed)
    ]
    current = [alias for alias in candidates if not entries[alias].deprecated(now)]
    chosen = (current or candidates)[:1]
    if not chosen:
        raise InvalidRequest(_nothing_fits(nature, needed), param="model", code="no_auto_model")
    return chosen[0]


def _nothing_fits(nature: RequestNature, needed: tuple[str, ...]) -> str:
    output = f" and up to {nature.max_output_tokens} output tokens" if nature.max_output_tokens else ""
    return (
        f"No model of your plan's auto pool can serve this request: it needs {', '.join(needed)}, "
        f"about {nature.prompt_tokens} prompt tokens{output}. Name a model instead."
    )
