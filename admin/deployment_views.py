"""What operators see of a deployment, and the checks on the ids and reasons they send."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from admin import validation as v
from core.errors import InvalidRequest
from provisioning.deployments import Deployment

DEPLOYMENT_ID = re.compile(r"[0-9a-f]{64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def deployment_view(d: Deployment) -> dict[str, Any]:
    """Everything an operator may see of a deployment: key ids and times, never a key or its hash."""
    plan = dataclasses.asdict(d.plan) if d.plan is not None else None
    return {
        "object": "deployment", "deployment_id": d.deployment_id, "application_id": d.application_id,
        "state": d.state, "last_event_type": d.last_event_type, "plan": plan, "plan_id": d.plan_id,
        "resource_usage_id": d.resource_usage_id, "first_event_time": v.iso(d.first_event_time),
        "last_event_time": v.iso(d.last_event_time), "bound_tid": d.bound_tid, "bound_oid": d.bound_oid,
        "bound_at": v.iso(d.bound_at), "generation": d.generation, "current_key_id": d.current_key_id,
        "previous_key_id": d.previous_key_id, "previous_valid_until": v.iso(d.previous_valid_until),
        "rotated_at": v.iso(d.rotated_at), "rotates_at": v.iso(d.rotates_at),
        "error_code": d.error_code, "error_message": d.error_message,
        "suspended": d.suspended, "suspended_at": v.iso(d.suspended_at), "suspended_reason": d.suspended_reason,
    }


def deployment_id(value: str) -> str:
    if not DEPLOYMENT_ID.fullmatch(value):
        raise InvalidRequest("A deployment id is 64 lower-case hex characters.", param="deployment_id")
    return value


def reason(body: dict[str, Any], *, also: frozenset[str] = frozenset()) -> str | None:
    v.check_fields(body, {"reason", *also})
    value = body.get("reason")
    if value is not None and (not isinstance(value, str) or len(value) > 256 or _CONTROL.search(value)):
        raise InvalidRequest("'reason' must be at most 256 printable characters.", param="reason")
    return value
