"""Operators sell prepaid credit: top-ups (lots with an expiry, optionally a pack for one model), adjustments with a
reason, pack conversions when a model is discontinued, and the owner's balance and ledger (limits.balance,
limits.ledger). Every change is audited; bad input is refused before anything is written.

A top-up carries an Idempotency-Key: its lot id is derived from it, so a retried top-up finds the lot and credits
nothing. Packs of a model past its `sunset_at` (the upstreams file) are converted as the owner's plan says
(`pack_on_sunset`) whenever the operator looks at or changes the owner's credit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from admin import validation as v
from admin.auth import Operator
from admin.credits_views import lot_view, parse_tokens, printable
from core.errors import InvalidRequest
from limits.balance import PrepaidBalances
from limits.lots import TopUp
from limits.plans import Plan, PlanCatalog
from provisioning.audit import AuditEvent, AuditLog

MAX_TOP_UP = 10**12
SOON = timedelta(days=30)
# Sunset model alias -> its replacement (None when it has none), as of now.
Sunsets = Callable[[datetime], Awaitable[Mapping[str, str | None]]]


@dataclass(frozen=True)
class Owner:
    key: str  # "team-…" or "dep-…"
    plan: Plan | None
    audit_as: tuple[str, str]  # (action prefix, resource id), e.g. ("admin.team", "team/a")


class AdminCredits:
    def __init__(
        self, *, balances: PrepaidBalances, audit: AuditLog, plans: PlanCatalog, now: Callable[[], datetime],
        expiry_days: int, sunsets: Sunsets | None = None,
    ) -> None:
        self.balances = balances
        self._audit = audit
        self._plans = plans
        self._now = now
        self._expiry = timedelta(days=expiry_days)
        self._sunsets = sunsets

    async def top_up(self, op: Operator, owner: Owner, body: dict[str, Any], idempotency_key: str | None
                     ) -> dict[str, Any]:
        v.check_fields(body, {"tokens", "expires_at", "model", "reference", "reason"})
        plan = _prepaid(owner)
        now = self._now()
        top_up = TopUp(
            tokens=parse_tokens(body, low=1, high=MAX_TOP_UP),
            expires_at=v.optional_datetime(body, "expires_at", after=now) or now + self._expiry,
            model=self._pack_model(body.get("model"), plan), reference=printable(body, "reference"),
            lot_id=_lot_id(owner.key, idempotency_key), actor=op.oid, reason=printable(body, "reason"),
        )
        await self._convert_sunset(op, owner)
        result = await self.balances.top_up(owner.key, top_up)
        if not result.duplicate:
            await self._record(op, owner, "top_up", f"{top_up.tokens} tokens; {top_up.reason or top_up.reference}")
        return {"object": "credit_top_up", "owner": owner.key, "duplicate": result.duplicate,
                "lot": lot_view(result.lot, now), "available": result.available}

    async def adjust(self, op: Operator, owner: Owner, body: dict[str, Any], idempotency_key: str | None
                     ) -> dict[str, Any]:
        v.check_fields(body, {"tokens", "reason", "expires_at"})
        _prepaid(owner)
        tokens = parse_tokens(body, low=-MAX_TOP_UP, high=MAX_TOP_UP)
        reason = printable(body, "reason", required=True) or ""
        now = self._now()
        expires_at = v.optional_datetime(body, "expires_at", after=now)
        if tokens == 0:
            raise InvalidRequest("'tokens' must not be 0.", param="tokens")
        if tokens > 0:
            top_up = TopUp(tokens, expires_at or now + self._expiry, lot_id=_lot_id(owner.key, idempotency_key),
                           actor=op.oid, reason=reason, kind="adjustment")
            available = (await self.balances.top_up(owner.key, top_up)).available
        else:
            if expires_at is not None:
                raise InvalidRequest("'expires_at' applies to positive adjustments only.", param="expires_at")
            available = await self.balances.deduct(owner.key, -tokens, reason=reason, actor=op.oid)
        await self._record(op, owner, "adjust", f"{tokens:+d} tokens; {reason}")
        return {"object": "credit_adjustment", "owner": owner.key, "tokens": tokens, "available": available}

    async def convert(self, op: Operator, owner: Owner, body: dict[str, Any]) -> dict[str, Any]:
        """Packs for `model` become general credit or packs for `to` (default: as the plan says for a sunset)."""
        v.check_fields(body, {"model", "to", "reason"})
        plan = _prepaid(owner)
        model = v.required_str(body, "model")
        reason = printable(body, "reason", required=True)
        target = body.get("to", plan.pack_on_sunset)
        if target == "general":
            to_model = None
        elif target == "replacement":
            to_model = (await self._sunset_map()).get(model)
            if to_model is None:
                raise InvalidRequest(f"Model '{model[:64]}' has no replacement; convert to 'general'.", param="to")
        else:
            to_model = self._pack_model(target, plan, param="to")
        if to_model == model:
            raise InvalidRequest("'to' must differ from 'model'.", param="to")
        moved = await self.balances.convert(owner.key, model, to_model, reason=reason, actor=op.oid)
        await self._record(op, owner, "convert", f"{model} -> {to_model or 'general'}: {moved} tokens; {reason}")
        return {"object": "credit_conversion", "owner": owner.key, "model": model, "to_model": to_model,
                "moved": moved}

    async def show(self, op: Operator, owner: Owner) -> dict[str, Any]:
        await self._convert_sunset(op, owner)
        await self.balances.sweep(owner.key)
        state = await self.balances.get(owner.key)
        now = self._now()
        lots = sorted((lot for lot in state.lots.lots if not lot.expired(now)), key=lambda lot: lot.order())
        soon = sum(lot.left for lot in lots if lot.expires_at is not None and lot.expires_at <= now + SOON)
        return {
            "object": "credits", "owner": owner.key, "plan_id": owner.plan.plan_id if owner.plan else None,
            "available": state.available, "reserved": state.reserved, "shortfall": state.shortfall,
            "expiring_within_30_days": soon, "lots": [lot_view(lot, now) for lot in lots],
        }

    def _pack_model(self, value: Any, plan: Plan, *, param: str = "model") -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not plan.allows(value):
            raise InvalidRequest(f"'{param}' must be a model of the plan '{plan.plan_id}'.", param=param)
        return value

    async def _sunset_map(self) -> Mapping[str, str | None]:
        return await self._sunsets(self._now()) if self._sunsets is not None else {}

    async def _convert_sunset(self, op: Operator, owner: Owner) -> None:
        if owner.plan is None:
            return
        sunsets = await self._sunset_map()
        state = await self.balances.get(owner.key)
        for model in sorted({lot.model for lot in state.lots.lots if lot.model is not None and lot.model in sunsets}):
            to_model = sunsets[model] if owner.plan.pack_on_sunset == "replacement" else None
            reason = f"model '{model}' is past its sunset"
            moved = await self.balances.convert(owner.key, model, to_model, reason=reason, actor=op.oid)
            await self._record(op, owner, "convert", f"{model} -> {to_model or 'general'}: {moved} tokens; {reason}")

    async def _record(self, op: Operator, owner: Owner, what: str, reason: str) -> None:
        await self._audit.record(AuditEvent(
            action=f"{owner.audit_as[0]}.credits.{what}", reason=reason[:256], actor_oid=op.oid, actor_tid=op.tid,
            plan_id=owner.plan.plan_id if owner.plan else None, resource_id=owner.audit_as[1], at=self._now(),
        ))


def _prepaid(owner: Owner) -> Plan:
    if owner.plan is None or owner.plan.mode != "prepaid":
        raise InvalidRequest("Credit applies to owners on a prepaid plan only.", param="plan_id", code="not_prepaid")
    return owner.plan


def _lot_id(owner: str, idempotency_key: str | None) -> str | None:
    if idempotency_key is None:
        return None
    return "i" + hashlib.sha256(f"{owner}\n{idempotency_key}".encode()).hexdigest()[:15]
