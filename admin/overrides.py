"""Operators set or clear an owner's limit override (limits.overrides): a deployment's or a team's RPM, TPM,
monthly token cap and allowed models, until an optional expiry. Every change is audited with its reason."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from admin import validation as v
from admin.auth import Operator
from core.errors import InvalidRequest
from keystore.principal import LimitOverride
from limits.overrides import OverrideStore, StoredOverride
from limits.plans import Plan, PlanCatalog
from provisioning.audit import AuditEvent, AuditLog

LIMIT_FIELDS = ("rpm", "tpm", "monthly_tokens", "models")
MAX_LIMIT = 10**12
_MAX_REASON = 256


class AdminOverrides:
    def __init__(self, *, store: OverrideStore, audit: AuditLog, plans: PlanCatalog, now: Callable[[], datetime]):
        self.store = store
        self._audit = audit
        self._plans = plans
        self._now = now

    async def view(self, owner: str) -> dict[str, Any] | None:
        found = await self.store.get(owner)
        return override_view(found, self._now()) if found is not None else None

    async def set(
        self, op: Operator, *, owner: str, plan: Plan | None, body: dict[str, Any], audit_as: tuple[str, str]
    ) -> dict[str, Any]:
        """`audit_as` is (action prefix, resource id), e.g. ("admin.team", "team/a"). Replaces any earlier override."""
        limits, reason = self._parse(body, plan)
        stored = StoredOverride(limits, reason=reason, set_by=op.oid, set_at=self._now())
        await self.store.put(owner, stored)
        await self._record(op, f"{audit_as[0]}.limits", audit_as[1], plan, reason)
        return override_view(stored, self._now())

    async def clear(
        self, op: Operator, *, owner: str, plan: Plan | None, reason: str | None, audit_as: tuple[str, str]
    ) -> bool:
        cleared = await self.store.delete(owner)
        if cleared:
            await self._record(op, f"{audit_as[0]}.limits.clear", audit_as[1], plan, reason)
        return cleared

    def _parse(self, body: dict[str, Any], plan: Plan | None) -> tuple[LimitOverride, str | None]:
        v.check_fields(body, {*LIMIT_FIELDS, "expires_at", "reason"})
        if not any(body.get(name) is not None for name in LIMIT_FIELDS):
            raise InvalidRequest(f"Give at least one of {', '.join(LIMIT_FIELDS)}.", param="rpm")
        monthly = _limit(body, "monthly_tokens", low=0)
        if monthly is not None and plan is not None and plan.mode == "prepaid":
            raise InvalidRequest("A prepaid plan is limited by its balance; it takes no monthly cap.",
                                 param="monthly_tokens")
        limits = LimitOverride(
            rpm=_limit(body, "rpm", low=1), tpm=_limit(body, "tpm", low=1), monthly_tokens=monthly,
            models=self._models(body.get("models")),
            expires_at=v.optional_datetime(body, "expires_at", after=self._now()),
        )
        return limits, reason_of(body)

    def _models(self, value: Any) -> tuple[str, ...] | None:
        if value is None:
            return None
        known = {model for plan in self._plans.plans for model in plan.models}
        if not isinstance(value, list) or not value or not all(isinstance(m, str) for m in value):
            raise InvalidRequest("'models' must be a non-empty list of model names.", param="models")
        unknown = sorted(set(value) - known)
        if unknown:
            raise InvalidRequest(f"Unknown model '{unknown[0][:64]}'.", param="models")
        return tuple(dict.fromkeys(value))

    async def _record(self, op: Operator, action: str, resource: str, plan: Plan | None, reason: str | None) -> None:
        await self._audit.record(AuditEvent(
            action=action, reason=reason, actor_oid=op.oid, actor_tid=op.tid,
            plan_id=plan.plan_id if plan is not None else None, resource_id=resource, at=self._now(),
        ))


def override_view(stored: StoredOverride, now: datetime) -> dict[str, Any]:
    """An override as operators see it: the limits, whether they apply now, and who set them, when and why."""
    limits = stored.limits
    return {
        "rpm": limits.rpm, "tpm": limits.tpm, "monthly_tokens": limits.monthly_tokens,
        "models": list(limits.models) if limits.models is not None else None,
        "expires_at": v.iso(limits.expires_at), "active": limits.active(now), "reason": stored.reason,
        "set_by": stored.set_by, "set_at": v.iso(stored.set_at),
    }


def _limit(body: dict[str, Any], name: str, *, low: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_LIMIT:
        raise InvalidRequest(f"'{name}' must be a whole number from {low} to {MAX_LIMIT}.", param=name)
    return value


def reason_of(body: dict[str, Any]) -> str | None:
    value = body.get("reason")
    if value is not None and (not isinstance(value, str) or len(value) > _MAX_REASON or not value.isprintable()):
        raise InvalidRequest(f"'reason' must be at most {_MAX_REASON} printable characters.", param="reason")
    return value
