from datetime import timedelta

import pytest

from keystore.models import KeyStatus
from tests.keystore.conftest import NOW, make_record


def test_active_key_without_expiry_is_usable() -> None:
    _, record = make_record()
    assert record.is_usable(NOW)


def test_active_key_expires() -> None:
    _, record = make_record(expires_at=NOW + timedelta(hours=1))
    assert record.is_usable(NOW)
    assert not record.is_usable(NOW + timedelta(hours=1))


def test_rotating_out_key_is_usable_only_before_expiry() -> None:
    _, record = make_record(status=KeyStatus.ROTATING_OUT, expires_at=NOW + timedelta(hours=1))
    assert record.is_usable(NOW)
    assert not record.is_usable(NOW + timedelta(hours=2))
    _, no_expiry = make_record(status=KeyStatus.ROTATING_OUT)
    assert not no_expiry.is_usable(NOW)


def test_revoked_key_is_never_usable() -> None:
    _, record = make_record(status=KeyStatus.REVOKED, revoked_at=NOW, expires_at=NOW + timedelta(days=1))
    assert not record.is_usable(NOW - timedelta(days=1))


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError):
        make_record(created_at=NOW.replace(tzinfo=None))


def test_status_strings_become_enum() -> None:
    _, record = make_record(status="rotating-out")
    assert record.status is KeyStatus.ROTATING_OUT
