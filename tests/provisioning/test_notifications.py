from datetime import UTC, datetime

import pytest

from core.errors import InvalidRequest
from provisioning.notifications import deployment_id_for, normalize_application_id, parse_event
from tests.provisioning.events import application_id, notification


def test_parses_marketplace_payload_with_seven_fractional_digits() -> None:
    event = parse_event(notification())
    assert event.event_type == "PUT"
    assert event.provisioning_state == "Succeeded"
    assert event.event_time == datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC)
    assert event.plan is not None and event.plan.name == "standard"
    assert event.resource_usage_id == "9a4c0d31-1f5e-4a8b-9b21-6d4c2f0e7a11"


def test_application_id_normalised_leading_slash_and_case() -> None:
    bare = application_id().lstrip("/")
    assert normalize_application_id(bare) == application_id().lower()
    assert deployment_id_for(application_id().upper()) == deployment_id_for(bare)


def test_unknown_provisioning_state_is_accepted() -> None:
    assert parse_event(notification(state="Updating")).provisioning_state == "Updating"


def test_failed_event_keeps_bounded_error() -> None:
    event = parse_event(notification(state="Failed", error={"code": "E", "message": "x" * 5000}))
    assert event.error_code == "E"
    assert event.error_message is not None and len(event.error_message) == 1024


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("eventType", "POST"),
        ("eventType", 3),
        ("applicationId", "/subscriptions/x/resourceGroups/y"),
        ("applicationId", None),
        ("eventTime", "yesterday"),
        ("eventTime", 1700000000),
        ("provisioningState", ""),
        ("provisioningState", ["Succeeded"]),
        ("plan", "standard"),
        ("billingDetails", []),
    ],
)
def test_invalid_fields_are_refused(field: str, value: object) -> None:
    payload = notification()
    payload[field] = value
    with pytest.raises(InvalidRequest) as caught:
        parse_event(payload)
    assert caught.value.param is not None
