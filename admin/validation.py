"""Checks on admin request bodies and query parameters (messages name the field, never echo the value),
and the one time format of admin responses."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from core.errors import InvalidRequest
from core.http import check_fields as check_fields  # re-exported: admin modules call v.check_fields

TEAM_NAME = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")
KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
MAX_DESCRIPTION = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def team_name(value: Any, *, param: str = "team") -> str:
    if not isinstance(value, str) or not TEAM_NAME.fullmatch(value):
        raise InvalidRequest(
            "Team names are 2-63 characters of a-z, 0-9 and '-', starting with a letter or digit.",
            param=param, code="invalid_team_name",
        )
    return value


def key_id(value: str) -> str:
    if not KEY_ID.fullmatch(value):
        raise InvalidRequest("Invalid key id.", param="key_id")
    return value


def required_str(body: dict[str, Any], name: str, *, max_chars: int = 100) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"'{name}' must be a non-empty string.", param=name)
    if len(value) > max_chars:
        raise InvalidRequest(f"'{name}' is longer than {max_chars} characters.", param=name)
    return value


def description(body: dict[str, Any], *, required: bool = False) -> str | None:
    value = body.get("description")
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise InvalidRequest("'description' must be a string.", param="description")
    if len(value) > MAX_DESCRIPTION or _CONTROL.search(value):
        raise InvalidRequest(
            f"'description' must be at most {MAX_DESCRIPTION} printable characters.", param="description"
        )
    return value


def optional_datetime(body: dict[str, Any], name: str, *, after: datetime) -> datetime | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise InvalidRequest(f"'{name}' must be an ISO 8601 timestamp with a UTC offset.", param=name)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"'{name}' must be an ISO 8601 timestamp with a UTC offset.", param=name) from None
    if parsed.utcoffset() is None:
        raise InvalidRequest(f"'{name}' must include a UTC offset.", param=name)
    if parsed <= after:
        raise InvalidRequest(f"'{name}' must be in the future.", param=name)
    return parsed


def optional_number(body: dict[str, Any], name: str, *, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidRequest(f"'{name}' must be a number between {low:g} and {high:g}.", param=name)
    return float(value)


def page_size(raw: str | None, *, default: int = 50, high: int = 200) -> int:
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= high:
        raise InvalidRequest(f"'limit' must be an integer between 1 and {high}.", param="limit")
    return int(raw)


_EARLIEST, _LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)
# An unencoded "+" in a query string arrives as a space: "…T00:00:00 08:00" meant "+08:00".
_SPACED_OFFSET = re.compile(r"(T[\d:.]+) (\d{2}(?::?\d{2})?)$")


def query_instant(params: Mapping[str, str], name: str) -> datetime | None:
    """An ISO 8601 date or datetime query parameter in UTC (UTC unless it has an offset); empty is absent."""
    raw = params.get(name) or None
    if raw is None:
        return None
    bad = InvalidRequest(f"'{name}' must be an ISO 8601 date or datetime (UTC unless it has an offset).", param=name)
    if len(raw) > 40:
        raise bad
    try:
        parsed = datetime.fromisoformat(_SPACED_OFFSET.sub(r"\1+\2", raw))
    except ValueError:
        raise bad from None
    parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    if not _EARLIEST <= parsed < _LATEST:
        raise InvalidRequest(f"'{name}' is out of range.", param=name)
    return parsed


def iso(value: datetime | None) -> str | None:
    """Times in admin responses: ISO 8601 in UTC."""
    return None if value is None else value.astimezone(UTC).isoformat()
