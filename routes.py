"""The one route table. function_app.py registers it with the Functions host; the local
server mounts the same handlers in Starlette."""

from __future__ import annotations

from dataclasses import dataclass

from admin.routes import ADMIN_ROUTES
from core.health import health
from core.http import Handler
from provisioning.handlers import exchange_key, marketplace_notification, rotate_key
from proxy.handlers import (
    audio_speech,
    audio_transcriptions,
    chat_completions,
    embeddings,
    image_generations,
    list_models,
    responses,
    usage_summary,
)


@dataclass(frozen=True)
class RouteSpec:
    route: str  # as the Functions host sees it (host.json routePrefix is "")
    methods: tuple[str, ...]
    handler: Handler

    @property
    def path(self) -> str:
        return "/" + self.route


ROUTES: tuple[RouteSpec, ...] = (
    # ARM appends /resource to the registered notification URL (…/api/marketplace?sig=…).
    RouteSpec("api/marketplace/resource", ("POST",), marketplace_notification),
    RouteSpec("api/provisioning/key", ("POST",), exchange_key),
    RouteSpec("api/provisioning/key/rotate", ("POST",), rotate_key),
    RouteSpec("api/health", ("GET",), health),
    # The OpenAI-compatible surface: base_url is https://<host>/v1.
    RouteSpec("v1/chat/completions", ("POST",), chat_completions),
    RouteSpec("v1/embeddings", ("POST",), embeddings),
    RouteSpec("v1/responses", ("POST",), responses),
    RouteSpec("v1/images/generations", ("POST",), image_generations),
    RouteSpec("v1/audio/transcriptions", ("POST",), audio_transcriptions),
    RouteSpec("v1/audio/speech", ("POST",), audio_speech),
    RouteSpec("v1/models", ("GET",), list_models),
    # Not an OpenAI path: the caller's own usage this month, for its Liutong key (proxy.account).
    RouteSpec("v1/usage", ("GET",), usage_summary),
    # The operators' API: its own Entra audience, the publisher's tenant and an app role.
    *(RouteSpec(route, methods, handler) for route, methods, handler in ADMIN_ROUTES),
)
