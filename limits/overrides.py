"""Per-owner overrides of a plan's limits: a temporary throttle, or more room for one customer, until an expiry.

Table `overrides`: PartitionKey = owner_key of the owner ("dep-<deployment id>" | "team-<team>"),
RowKey = "limits"; properties rpm, tpm and monthly_tokens (Int64), models (JSON list), expires_at, reason,
set_by (operator oid), set_at.
An absent property leaves the plan's value. The proxy reads an owner's override with its key's principal (one
point read per principal cache miss), so a change takes effect within the principal cache TTL.

`monthly_tokens` replaces the month's token limit of a quota plan with a hard cap: calls are refused with 429
insufficient_quota once the month's plan tokens reach it, lower or higher than the plan's included tokens, and
also on a plan that otherwise bills overage. Billing does not change: metering bills from the catalog plan.
Prepaid plans are limited by their balance, so they take no monthly cap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode

from core.tables import Tables, int64, int_value, storage_errors
from keystore.entities import optional_utc
from keystore.principal import LimitOverride
from limits.owners import owner_key
from limits.plans import Plan

TABLE = "overrides"
ROW = "limits"


@dataclass(frozen=True)
class StoredOverride:
    """An override as stored: the limits, and who set them, when and why."""

    limits: LimitOverride
    reason: str | None = None
    set_by: str | None = None
    set_at: datetime | None = None


def effective_plan(plan: Plan, override: LimitOverride | None, now: datetime) -> Plan:
    """The plan with an owner's unexpired override applied (model_copy: the catalog's checks already passed)."""
    if override is None or not override.active(now):
        return plan
    update: dict[str, Any] = {}
    if override.rpm is not None:
        update["rpm"] = override.rpm
    if override.tpm is not None:
        update["tpm"] = override.tpm
    if override.models is not None:
        update["models"] = override.models
    if override.monthly_tokens is not None and plan.mode == "quota":
        update["monthly_included_tokens"] = override.monthly_tokens
        update["overage"] = "block"
    return plan.model_copy(update=update) if update else plan


class OverrideStore:
    def __init__(self, tables: Tables) -> None:
        self._table = tables.table(TABLE)

    async def get(self, owner: str) -> StoredOverride | None:
        with storage_errors():
            try:
                entity = await self._table.get_entity(owner_key(owner), ROW)
            except ResourceNotFoundError:
                return None
        return _from_entity(entity)

    async def limits(self, owner: str) -> LimitOverride | None:
        found = await self.get(owner)
        return found.limits if found is not None else None

    async def put(self, owner: str, override: StoredOverride) -> None:
        with storage_errors():
            await self._table.upsert_entity(_to_entity(owner, override), mode=UpdateMode.REPLACE)

    async def delete(self, owner: str) -> bool:
        """True when there was an override to remove (idempotent otherwise)."""
        if await self.get(owner) is None:
            return False
        with storage_errors():
            await self._table.delete_entity(owner_key(owner), ROW)
        return True


def _to_entity(owner: str, override: StoredOverride) -> dict[str, Any]:
    limits = override.limits
    values: dict[str, Any] = {
        "rpm": limits.rpm, "tpm": _int64(limits.tpm), "monthly_tokens": _int64(limits.monthly_tokens),
        "models": json.dumps(list(limits.models)) if limits.models is not None else None,
        "expires_at": limits.expires_at, "reason": override.reason, "set_by": override.set_by,
        "set_at": override.set_at,
    }
    entity: dict[str, Any] = {"PartitionKey": owner_key(owner), "RowKey": ROW}
    entity.update({name: value for name, value in values.items() if value is not None})
    return entity


def _from_entity(entity: Any) -> StoredOverride:
    models = entity.get("models")
    limits = LimitOverride(
        rpm=_optional_int(entity.get("rpm")), tpm=_optional_int(entity.get("tpm")),
        monthly_tokens=_optional_int(entity.get("monthly_tokens")),
        models=tuple(json.loads(models)) if models else None, expires_at=optional_utc(entity.get("expires_at")),
    )
    return StoredOverride(limits, entity.get("reason"), entity.get("set_by"), optional_utc(entity.get("set_at")))


def _int64(value: int | None) -> Any:
    return None if value is None else int64(value)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int_value(value)
