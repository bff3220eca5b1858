"""Which upstream serves a call: the plan's models, the registry's targets, and what the answer must say about it.

A Route is what the rest of the call works with: the alias the call is recorded under, its target, and the
headers the answer carries because of the choice: `x-liutong-model` (auto mode: the provider's model name),
`x-liutong-redirected-from` (a sunset alias's replacement served the call), `Deprecation` and `Sunset`
(proxy.lifecycle).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.errors import NotFound, PermissionDenied
from limits.plans import Plan
from proxy import auto
from proxy.lifecycle import REDIRECTED_FROM, after_sunset, deprecation_headers, lifecycle_fields
from proxy.nature import RequestNature
from proxy.registry import UpstreamRegistry, UpstreamTarget
from proxy.upstreams import AUTO_ALIAS, upstream_model

CHOSEN_MODEL = "x-liutong-model"


@dataclass(frozen=True)
class Route:
    plan: Plan
    target: UpstreamTarget
    alias: str  # what the call is recorded and limited under
    headers: Mapping[str, str] = field(default_factory=dict)
    auto: bool = False


class Router:
    def __init__(self, upstreams: UpstreamRegistry) -> None:
        self._upstreams = upstreams
        self._entries = upstreams.config.models

    def route(self, plan: Plan, model: str, nature: RequestNature, now: datetime) -> Route:
        is_auto = model == AUTO_ALIAS
        if is_auto:
            alias = auto.choose(plan, nature, self._entries, now)
        elif plan.allows(model):
            alias = model
        else:
            raise PermissionDenied(
                "The model does not exist or your plan does not include it.", code="model_not_found", param="model"
            )
        headers: dict[str, str] = {}
        entry = self._entries.get(alias)
        if entry is not None and entry.sunset(now):
            headers[REDIRECTED_FROM] = alias
        # Replacements are sunset strictly later than what they replace (proxy.upstreams): this ends.
        while entry is not None and entry.sunset(now):
            alias = after_sunset(plan, alias, entry)
            entry = self._entries.get(alias)
        target = self._upstreams.get(alias)
        if target is None or entry is None:
            raise NotFound("The model is not available at the moment.", code="model_not_found", param="model")
        headers.update(deprecation_headers(entry, now))
        if is_auto:
            headers[CHOSEN_MODEL] = upstream_model(entry)
        return Route(plan, target, alias, headers, auto=is_auto)

    def models(self, plan: Plan, now: datetime) -> list[dict[str, Any]]:
        """The /v1/models entries the plan may call: not those past their sunset; `auto` when the plan has it."""
        listed: list[dict[str, Any]] = []
        for alias in plan.models:
            target, entry = self._upstreams.get(alias), self._entries.get(alias)
            if target is None or entry is None or entry.sunset(now):
                continue
            listed.append(_model(alias, target.created) | lifecycle_fields(entry, now))
        if plan.auto_models:
            listed.append(_model(AUTO_ALIAS, 0))
        return listed


def _model(alias: str, created: int) -> dict[str, Any]:
    return {"id": alias, "object": "model", "created": created, "owned_by": "liutong"}
