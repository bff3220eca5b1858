"""Key records as Table entities and back; every time read back is a plain UTC datetime."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from keystore.models import KeyRecord, KeyStatus

_DATETIME_FIELDS = ("created_at", "expires_at", "revoked_at", "last_used_at")
_OPTIONAL_FIELDS = ("deployment_id", "application_id", "generation", "master_version", "rotated_from")


def to_entity(record: KeyRecord) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": record.key_hash[:2],
        "RowKey": record.key_hash,
        "key_id": record.key_id,
        "prefix": record.prefix,
        "team": record.team,
        "description": record.description,
        "status": record.status.value,
    }
    for name in (*_DATETIME_FIELDS, *_OPTIONAL_FIELDS):
        value = getattr(record, name)
        if value is not None:  # the SDK skips None; we never clear a field, so MERGE stays correct
            entity[name] = value.astimezone(UTC) if isinstance(value, datetime) else value
    return entity


def plain_utc(value: Any) -> datetime:
    # The SDK returns a datetime subclass; normalise so records compare and print plainly.
    v = value.astimezone(UTC)
    return datetime(v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond, tzinfo=UTC)


def optional_utc(value: Any) -> datetime | None:
    return None if value is None else plain_utc(value)


def from_entity(entity: Any) -> KeyRecord:
    generation = entity.get("generation")
    return KeyRecord(
        key_hash=entity["RowKey"],
        key_id=entity["key_id"],
        prefix=entity["prefix"],
        team=entity.get("team", ""),
        description=entity.get("description", ""),
        status=KeyStatus(entity["status"]),
        created_at=plain_utc(entity["created_at"]),
        deployment_id=entity.get("deployment_id"),
        application_id=entity.get("application_id"),
        expires_at=optional_utc(entity.get("expires_at")),
        revoked_at=optional_utc(entity.get("revoked_at")),
        last_used_at=optional_utc(entity.get("last_used_at")),
        generation=int(generation) if generation is not None else None,
        master_version=entity.get("master_version"),
        rotated_from=entity.get("rotated_from"),
    )
