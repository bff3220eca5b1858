"""The proxy's domain: who is calling, may they, forward, account.

Per call: principal → plan → model allowed? → estimate (prompt from the request size + max tokens)
→ limiter.admit → upstream → usage → settle (or refund when nothing billable came back)
→ one usage record → the answer with the admission's rate-limit headers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import aiohttp

from core.clock import utc_now
from core.errors import LiutongError, PermissionDenied
from core.settings import Settings
from keystore.keys import display_prefix, is_well_formed
from keystore.principal import Principal
from limits.admission import Limiter
from limits.overrides import effective_plan
from limits.plans import Plan
from proxy.accounting import from_response
from proxy.byok import ByokCredentials, admission_plan, byok_credential, own_credential, refused_error
from proxy.forwarding import UpstreamClient, read_all
from proxy.metered_call import MeteredCall
from proxy.nature import RequestNature
from proxy.payloads import chat_nature, estimate_tokens, parse_chat, parse_embeddings, upstream_body
from proxy.registry import CHAT, EMBEDDINGS, JSON, RESPONSES, UpstreamRegistry
from proxy.request_ids import new_request_id
from proxy.responses import RESPONSES_ENDPOINT, ResponsesTap, parse_responses, responses_body, responses_nature
from proxy.routing import Route, Router
from proxy.sse import SseUsageTap
from proxy.streaming import StreamRelay, UsageTap
from usage.records import UsageSink
from usage.refusals import RefusalCounter, key_reference

CHAT_ENDPOINT = "/v1/chat/completions"
EMBEDDINGS_ENDPOINT = "/v1/embeddings"
# Reserved for the answer when the caller sets no max_tokens; settle replaces it with the real count.
DEFAULT_COMPLETION_ESTIMATE = 1024
# Refusals counted per hour in usage.refusals: a bad or inactive key, a model or account refused, a limit.
REFUSED_STATUSES = frozenset({401, 403, 429})


class PrincipalResolver(Protocol):
    async def resolve(self, key: str) -> Principal:
        """The key's principal, or AuthenticationFailed."""
        ...


@dataclass(frozen=True)
class JsonResult:
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class StreamResult:
    relay: StreamRelay
    headers: dict[str, str]


class ProxyService:
    def __init__(
        self,
        *,
        resolver: PrincipalResolver,
        plans: Callable[[str], Plan | None],
        limiter: Limiter,
        usage: UsageSink,
        upstreams: UpstreamRegistry,
        settings: Settings,
        clock: Callable[[], datetime] = utc_now,
        client: UpstreamClient | None = None,
        default_completion_estimate: int = DEFAULT_COMPLETION_ESTIMATE,
        refusals: RefusalCounter | None = None,
        byok: ByokCredentials | None = None,
    ) -> None:
        self._resolver = resolver
        self._plans = plans
        self._limiter = limiter
        self._usage = usage
        self._upstreams = upstreams
        self._router = Router(upstreams)
        self._settings = settings
        self._clock = clock
        self._client = client or UpstreamClient()
        self._default_completion = default_completion_estimate
        self._background: set[asyncio.Task[None]] = set()
        self._refusals = refusals
        self._byok = byok

    @property
    def max_body_bytes(self) -> int:
        return self._settings.proxy_max_body_bytes

    @property
    def max_upload_bytes(self) -> int:
        return self._settings.proxy_max_upload_bytes

    @property
    def background(self) -> set[asyncio.Task[None]]:
        """Accounting that outlives its request (the caller left): close() waits for these."""
        return self._background

    async def authenticate(self, key: str) -> Principal:
        try:
            return await self._resolver.resolve(key)
        except LiutongError as error:
            prefix = display_prefix(key) if is_well_formed(key) else None
            self._count_refusal(None, key_reference(prefix), error)
            raise

    @contextlib.contextmanager
    def counting_refusals(self, principal: Principal) -> Iterator[None]:
        """Counts a 403/429 raised inside (model not allowed, rate limit, quota) against the caller's key."""
        try:
            yield
        except LiutongError as error:
            self._count_refusal(principal.owner, principal.key_id, error)
            raise

    def _count_refusal(self, owner: str | None, key: str, error: LiutongError) -> None:
        if self._refusals is not None and error.status_code in REFUSED_STATUSES:
            self._refusals.record(
                self._clock(), owner=owner, key=key, status=error.status_code, code=error.code, error=error,
            )

    def list_models(self, principal: Principal) -> dict[str, Any]:
        with self.counting_refusals(principal):
            plan = self._plan(principal)
        return {"object": "list", "data": self._router.models(plan, self._clock())}

    async def chat_completions(
        self, principal: Principal, raw: bytes, content_type: str | None
    ) -> JsonResult | StreamResult:
        request = parse_chat(raw, content_type)
        completion = request.max_completion_tokens
        completion = (self._default_completion if completion is None else completion) * request.choices
        prompt = estimate_tokens(raw)
        nature = chat_nature(request, prompt)
        with self.counting_refusals(principal):
            route = self.route(principal, request.model, nature)
            call = await self.admit(principal, route, CHAT_ENDPOINT, prompt, completion)
        body = upstream_body(request, route.target.model_for(CHAT))
        response = await self.send(call, route, CHAT, body, stream=request.stream)
        if not request.stream:
            return await self.answer(call, response)
        return self.stream(call, response, SseUsageTap(caller_wants_usage=request.caller_wants_usage))

    async def embeddings(self, principal: Principal, raw: bytes, content_type: str | None) -> JsonResult:
        request = parse_embeddings(raw, content_type)
        prompt = request.input_tokens or estimate_tokens(raw)
        with self.counting_refusals(principal):
            route = self.route(principal, request.model, RequestNature(EMBEDDINGS_ENDPOINT, prompt_tokens=prompt))
            call = await self.admit(principal, route, EMBEDDINGS_ENDPOINT, prompt, 0)
        body = upstream_body(request, route.target.model_for(EMBEDDINGS))
        response = await self.send(call, route, EMBEDDINGS, body, stream=False)
        return await self.answer(call, response)

    async def responses(self, principal: Principal, raw: bytes, content_type: str | None) -> JsonResult | StreamResult:
        request = parse_responses(raw, content_type)
        prompt = estimate_tokens(raw)
        completion = request.max_output_tokens
        completion = self._default_completion if completion is None else completion
        with self.counting_refusals(principal):
            route = self.route(principal, request.model, responses_nature(request, prompt))
            body = responses_body(request, route.target.model_for(RESPONSES), route.plan)
            call = await self.admit(principal, route, RESPONSES_ENDPOINT, prompt, completion)
        response = await self.send(call, route, RESPONSES, body, stream=request.stream)
        if not request.stream:
            return await self.answer(call, response)
        return self.stream(call, response, ResponsesTap())

    async def close(self) -> None:
        """Let streams of departed callers finish their accounting, then close the pool."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=self._settings.stream_drain_max_seconds + 5)
        await self._client.close()
        await self._upstreams.close()
        if self._refusals is not None:
            with contextlib.suppress(LiutongError):  # diagnostics: a storage outage at shutdown loses the last counts
                await self._refusals.close()

    def _plan(self, principal: Principal) -> Plan:
        plan = self._plans(principal.plan_id)
        if plan is None:
            raise PermissionDenied("Your key's plan is not available.", code="plan_not_available")
        return effective_plan(plan, principal.limits, self._clock())

    def route(self, principal: Principal, model: str, nature: RequestNature) -> Route:
        return self._router.route(self._plan(principal), model, nature, self._clock())

    async def admit(
        self, principal: Principal, route: Route, endpoint: str, prompt: int, completion: int,
        *, estimated_plan_tokens: int | None = None,
    ) -> MeteredCall:
        estimate = estimated_plan_tokens
        if estimate is None:
            estimate = route.plan.plan_tokens(route.alias, prompt + completion)
        byok = await own_credential(self._byok, principal, route.plan, route.alias) is not None
        plan = admission_plan(route.plan) if byok else route.plan
        admission = await self._limiter.admit(
            principal, plan, model_alias=route.alias,
            estimated_plan_tokens=route.plan.byok_fee_plan_tokens if byok else estimate,
        )
        return MeteredCall(
            request_id=new_request_id(), principal=principal, plan=route.plan, model_alias=route.alias,
            endpoint=endpoint, admission=admission, sink=self._usage, clock=self._clock, prompt_estimate=prompt,
            route_headers=route.headers, auto=route.auto, byok=byok,
        )

    async def send(
        self, call: MeteredCall, route: Route, path: str, body: bytes, *, stream: bool,
        content_type: str = JSON, accept: str | None = None,
    ) -> aiohttp.ClientResponse:
        target = route.target
        try:
            auth = await byok_credential(self._byok, call.principal, route) if call.byok else target.auth
            headers = await target.headers(stream=stream, content_type=content_type, accept=accept, auth=auth)
            return await self._client.send(target.urls[path], body, headers, target.timeout)
        except LiutongError as caught:
            error = caught
            if error.code == "upstream_auth_failed" and call.byok and self._byok is not None:
                self._byok.refused(call.principal.team)
                error = refused_error()
            elif error.code == "upstream_auth_failed":
                target.auth.invalidate()
            await call.failed(error.status_code)
            error.headers = {**call.headers, **error.headers}
            if error is caught:
                raise
            raise error from None

    async def answer(self, call: MeteredCall, response: aiohttp.ClientResponse) -> JsonResult:
        try:
            body = await read_all(response)
        except LiutongError as error:
            await call.failed(error.status_code)
            error.headers = {**call.headers, **error.headers}
            raise
        await call.succeeded(from_response(body, call.prompt_estimate))
        return JsonResult(body, call.headers)

    def stream(self, call: MeteredCall, response: aiohttp.ClientResponse, tap: UsageTap) -> StreamResult:
        relay = StreamRelay(
            response, tap, on_end=call.stream_ended,
            drain_seconds=self._settings.stream_drain_max_seconds, background=self._background,
        )
        return StreamResult(relay, {**call.headers, "cache-control": "no-cache"})
