"""Parsing of Azure Marketplace managed-application notifications (plain data in, plain data out).

ARM drops an event on any 4xx but 429, so only payloads that can never succeed are refused;
unknown provisioning states are accepted as they are.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.errors import InvalidRequest

EVENT_TYPES = ("PUT", "PATCH", "DELETE")
_APPLICATION_ID = re.compile(
    r"^/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft\.solutions/applications/[^/]+$",
    re.IGNORECASE,
)
_EVENT_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?(Z|[+-]\d{2}:\d{2})$")
MAX_FIELD_CHARS = 1024


@dataclass(frozen=True)
class Plan:
    publisher: str
    product: str
    name: str
    version: str


@dataclass(frozen=True)
class MarketplaceEvent:
    event_type: str
    application_id: str
    event_time: datetime
    event_time_text: str
    provisioning_state: str
    plan: Plan | None
    resource_usage_id: str | None
    error_code: str | None
    error_message: str | None


def normalize_application_id(value: str) -> str:
    """ARM IDs are case-insensitive; the docs' own samples sometimes drop the leading slash."""
    candidate = value.strip()
    if not candidate.startswith("/"):
        candidate = "/" + candidate
    candidate = candidate.rstrip("/")
    if not _APPLICATION_ID.match(candidate) or len(candidate) > MAX_FIELD_CHARS:
        raise InvalidRequest("applicationId is not a managed application resource ID.", param="applicationId")
    return candidate.lower()


def deployment_id_for(application_id: str) -> str:
    """Table keys cannot hold '/': deployments are keyed by the SHA-256 of the normalised ID."""
    return hashlib.sha256(normalize_application_id(application_id).encode()).hexdigest()


def parse_event_time(value: str) -> datetime:
    if not _EVENT_TIME.match(value):
        raise InvalidRequest("eventTime must be an ISO 8601 timestamp.", param="eventTime")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.astimezone(UTC)


def parse_event(payload: dict[str, Any]) -> MarketplaceEvent:
    event_type = _required_str(payload, "eventType").upper()
    if event_type not in EVENT_TYPES:
        raise InvalidRequest("eventType must be PUT, PATCH or DELETE.", param="eventType")
    event_time_text = _required_str(payload, "eventTime")
    error = _optional_object(payload, "error")
    return MarketplaceEvent(
        event_type=event_type,
        application_id=normalize_application_id(_required_str(payload, "applicationId")),
        event_time=parse_event_time(event_time_text),
        event_time_text=event_time_text,
        provisioning_state=_required_str(payload, "provisioningState"),
        plan=_parse_plan(payload),
        resource_usage_id=_resource_usage_id(payload),
        error_code=_truncated(error, "code") if error else None,
        error_message=_truncated(error, "message") if error else None,
    )


def _parse_plan(payload: dict[str, Any]) -> Plan | None:
    plan = _optional_object(payload, "plan")
    if plan is None:
        return None
    return Plan(
        publisher=_optional_str(plan, "publisher", "plan.publisher") or "",
        product=_optional_str(plan, "product", "plan.product") or "",
        name=_required_str(plan, "name", "plan.name"),
        version=_optional_str(plan, "version", "plan.version") or "",
    )


def _resource_usage_id(payload: dict[str, Any]) -> str | None:
    billing = _optional_object(payload, "billingDetails")
    if billing is None:
        return None
    return _optional_str(billing, "resourceUsageId", "billingDetails.resourceUsageId")


def _required_str(obj: dict[str, Any], key: str, param: str | None = None) -> str:
    value = _optional_str(obj, key, param)
    if not value:
        raise InvalidRequest(f"{param or key} is required.", param=param or key)
    return value


def _optional_str(obj: dict[str, Any], key: str, param: str | None = None) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"{param or key} must be a string.", param=param or key)
    if len(value) > MAX_FIELD_CHARS:
        raise InvalidRequest(f"{param or key} is too long.", param=param or key)
    return value


def _truncated(obj: dict[str, Any], key: str) -> str | None:
    """Error details are informational: keep a bounded copy rather than refuse the event."""
    value = obj.get(key)
    return value[:MAX_FIELD_CHARS] if isinstance(value, str) else None


def _optional_object(obj: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequest(f"{key} must be an object.", param=key)
    return value
