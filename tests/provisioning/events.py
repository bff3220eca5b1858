"""Builders for Marketplace notification payloads as ARM sends them."""

from __future__ import annotations

from typing import Any

SUBSCRIPTION = "0b1f6471-1bf0-4dda-aec3-111122223333"
PLAN = {"publisher": "liutong", "product": "liutong-llm", "name": "standard", "version": "1.0.0"}
RESOURCE_USAGE_ID = "9a4c0d31-1f5e-4a8b-9b21-6d4c2f0e7a11"


def application_id(name: str = "liutong-app", subscription: str = SUBSCRIPTION) -> str:
    return (
        f"/subscriptions/{subscription}/resourceGroups/customer-rg/providers/"
        f"Microsoft.Solutions/applications/{name}"
    )


def notification(
    event_type: str = "PUT",
    state: str = "Succeeded",
    *,
    app_id: str | None = None,
    event_time: str = "2026-11-22T10:00:00.1234567Z",
    plan: dict[str, str] | None = PLAN,
    resource_usage_id: str | None = RESOURCE_USAGE_ID,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "eventType": event_type,
        "applicationId": app_id or application_id(),
        "eventTime": event_time,
        "provisioningState": state,
    }
    if plan is not None:
        payload["plan"] = dict(plan)
    if resource_usage_id is not None:
        payload["billingDetails"] = {"resourceUsageId": resource_usage_id}
    if error is not None:
        payload["error"] = error
    return payload


def lifecycle(app_id: str | None = None) -> list[dict[str, Any]]:
    """A deployment's whole documented history, in order."""
    steps = [
        ("PUT", "Accepted", "2026-11-22T10:00:00.0000001Z"),
        ("PUT", "Succeeded", "2026-11-22T10:05:00.1000000Z"),
        ("PATCH", "Succeeded", "2026-11-22T11:00:00.2000000Z"),
        ("DELETE", "Deleting", "2026-11-22T12:00:00.3000000Z"),
        ("DELETE", "Deleted", "2026-11-22T12:03:00.4000000Z"),
    ]
    return [notification(t, s, app_id=app_id, event_time=when) for t, s, when in steps]
