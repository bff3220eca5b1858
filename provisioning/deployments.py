"""The deployment record of one managed application, and how notifications move it.

Delivery is at-least-once and unordered, so every event carries an ordering key and a
record only ever moves forward along it. `Deleted` outranks everything: nothing moves a
deployment back from it, whatever order the events arrive in.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from provisioning.notifications import MarketplaceEvent, Plan, deployment_id_for

_STATE_RANK = {
    "accepted": 1,
    "succeeded": 3,
    "failed": 3,
    "canceled": 3,
    "deleting": 4,
    "deleted": 5,
}
_UNKNOWN_STATE_RANK = 2
_EVENT_TYPE_RANK = {"PUT": 0, "PATCH": 1, "DELETE": 2}

REVOKING_STATES = frozenset({"deleting", "deleted"})
REFUSED_STATES = frozenset({"failed", "canceled", "deleting", "deleted"})
SUSPENDED_MESSAGE = (
    "Access to Liutong for this account is suspended by the publisher. Contact the publisher to restore it."
)


@dataclass(frozen=True)
class Deployment:
    deployment_id: str
    application_id: str
    state: str
    last_event_type: str
    state_key: str
    first_event_time: datetime
    last_event_time: datetime
    plan: Plan | None = None
    plan_key: str = ""
    resource_usage_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    bound_tid: str | None = None
    bound_oid: str | None = None
    bound_at: datetime | None = None
    generation: int = 0
    master_version: str | None = None
    current_key_id: str | None = None
    current_key_hash: str | None = None
    rotated_at: datetime | None = None
    rotates_at: datetime | None = None
    previous_key_id: str | None = None
    previous_key_hash: str | None = None
    previous_valid_until: datetime | None = None
    previous_retired: bool = True
    # Set by an operator (non-payment, misuse); ARM's notifications never touch it, resume clears it.
    suspended_at: datetime | None = None
    suspended_reason: str | None = None
    etag: str | None = None

    @property
    def revokes_keys(self) -> bool:
        return self.state.lower() in REVOKING_STATES

    @property
    def refuses_keys(self) -> bool:
        return self.state.lower() in REFUSED_STATES

    @property
    def suspended(self) -> bool:
        return self.suspended_at is not None

    @property
    def plan_id(self) -> str | None:
        return self.plan.name if self.plan else None

    def is_bound_to(self, tid: str, oid: str) -> bool:
        return (self.bound_tid, self.bound_oid) == (tid.lower(), oid.lower())


def event_key(event: MarketplaceEvent) -> str:
    """A sortable text key: deleted first, then time, then how far along the state is."""
    state = event.provisioning_state.lower()
    terminal = "1" if state == "deleted" else "0"
    rank = _STATE_RANK.get(state, _UNKNOWN_STATE_RANK)
    when = event.event_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{terminal}|{when}|{rank}|{_EVENT_TYPE_RANK[event.event_type]}|{state}"


def apply_event(current: Deployment | None, event: MarketplaceEvent) -> Deployment | None:
    """The record after `event`, or None when the event changes nothing (replay or stale)."""
    if current is None:
        return _new_deployment(event)
    updated = current
    key = event_key(event)
    if key > current.state_key:
        updated = dataclasses.replace(
            updated,
            state=event.provisioning_state,
            last_event_type=event.event_type,
            state_key=key,
            last_event_time=event.event_time,
            error_code=event.error_code,
            error_message=event.error_message,
        )
    if event.event_time < current.first_event_time:
        updated = dataclasses.replace(updated, first_event_time=event.event_time)
    if _carries_billing(event) and key > current.plan_key:
        updated = dataclasses.replace(
            updated, plan=event.plan, resource_usage_id=event.resource_usage_id, plan_key=key
        )
    return None if updated == current else updated


def _new_deployment(event: MarketplaceEvent) -> Deployment:
    key = event_key(event)
    billing = _carries_billing(event)
    return Deployment(
        deployment_id=deployment_id_for(event.application_id),
        application_id=event.application_id,
        state=event.provisioning_state,
        last_event_type=event.event_type,
        state_key=key,
        first_event_time=event.event_time,
        last_event_time=event.event_time,
        plan=event.plan if billing else None,
        plan_key=key if billing else "",
        resource_usage_id=event.resource_usage_id if billing else None,
        error_code=event.error_code,
        error_message=event.error_message,
    )


def _carries_billing(event: MarketplaceEvent) -> bool:
    return event.plan is not None
