"""One admitted call: settles or refunds its reservation and writes its single usage record.

The record is metadata only. Nothing here ever sees prompt text, embeddings input, output, the
caller's IP, user agent or headers; failures are logged by type, never by content.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from keystore.principal import Principal
from limits.admission import Admission
from limits.plans import Plan
from proxy.accounting import Tokens, estimated, from_usage
from proxy.streaming import StreamEnd
from usage.records import UsageRecord, UsageSink

logger = logging.getLogger("liutong.proxy")

# What the record's status says when the caller did not get an ordinary ending.
CALLER_GONE_STATUS = 499
BROKEN_STREAM_STATUS = 502


@dataclass(frozen=True)
class Units:
    """What a media call is metered in (usage.groups.UNITS), how many, and what they cost in plan tokens."""

    unit: str
    quantity: int
    plan_tokens: int


@dataclass
class MeteredCall:
    request_id: str
    principal: Principal
    plan: Plan
    model_alias: str
    endpoint: str
    admission: Admission
    sink: UsageSink
    clock: Callable[[], datetime]
    prompt_estimate: int
    route_headers: Mapping[str, str] = field(default_factory=dict)
    auto: bool = False
    byok: bool = False  # served with the team's own provider credential: settles at the plan's BYOK fee
    started: float = field(default_factory=time.monotonic)

    @property
    def headers(self) -> dict[str, str]:
        return {**self.admission.headers, **self.route_headers, "x-request-id": self.request_id}

    async def succeeded(self, tokens: Tokens, *, status: int = 200, units: Units | None = None) -> None:
        """Settles at the tokens' plan tokens, or at the media units' when given, or at the BYOK fee."""
        plan_tokens = self.plan.plan_tokens(self.model_alias, tokens.total) if units is None else units.plan_tokens
        if self.byok:
            plan_tokens = self.plan.byok_fee_plan_tokens
        try:
            await self.admission.settle(plan_tokens=plan_tokens)
        except Exception as error:  # noqa: BLE001 - the usage record below is what bills; it must be written
            logger.error("settle failed for %s (%s)", self.request_id, type(error).__name__)
        await self._record(tokens, status=status, plan_tokens=plan_tokens, units=units)

    async def failed(self, status: int) -> None:
        try:
            await self.admission.refund()
        except Exception as error:  # noqa: BLE001 - a lost refund must not hide the caller's real error
            logger.error("refund failed for %s (%s)", self.request_id, type(error).__name__)
        await self._record(Tokens(), status=status, plan_tokens=0)

    async def stream_ended(self, end: StreamEnd) -> None:
        status = {"complete": 200, "caller_gone": CALLER_GONE_STATUS}.get(end.outcome, BROKEN_STREAM_STATUS)
        if end.outcome != "complete":
            logger.warning("stream %s for %s ended: %s", self.request_id, self.model_alias, end.outcome)
        tokens = from_usage(end.usage)
        if tokens is not None:
            await self.succeeded(tokens, status=status)
        elif end.saw_output:
            await self.succeeded(estimated(self.prompt_estimate, end.output_chars), status=status)
        else:
            await self.failed(status)

    async def _record(self, tokens: Tokens, *, status: int, plan_tokens: int, units: Units | None = None) -> None:
        principal = self.principal
        record = UsageRecord(
            request_id=self.request_id,
            at=self.clock(),
            team=principal.team,
            key_id=principal.key_id,
            plan_id=self.plan.plan_id,
            model_alias=self.model_alias,
            endpoint=self.endpoint,
            status=status,
            latency_ms=int((time.monotonic() - self.started) * 1000),
            prompt_tokens=tokens.prompt,
            cached_tokens=tokens.cached,
            completion_tokens=tokens.completion,
            total_tokens=tokens.total,
            plan_tokens=plan_tokens,
            estimated=tokens.estimated,
            deployment_id=principal.deployment_id,
            resource_usage_id=principal.resource_usage_id,
            reasoning_tokens=tokens.reasoning,
            unit=units.unit if units is not None else None,
            quantity=units.quantity if units is not None else 0,
            auto=self.auto,
            byok=self.byok,
        )
        try:
            await self.sink.record(record)
        except Exception as error:  # noqa: BLE001 - logged loudly; the caller's answer is already decided
            logger.error("usage record %s was not accepted (%s)", self.request_id, type(error).__name__)
