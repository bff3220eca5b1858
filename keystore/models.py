"""Plain data for stored keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

# Why a rotation revoked a key, as the audit log says it.
SUPERSEDED = "superseded: a newer rotation pushed it out of the previous-key slot"
NO_GRACE = "rotated without grace (revoke_previous)"
NEVER_ISSUED = "never issued: a concurrent rotation or revocation came first"


class KeyStatus(StrEnum):
    ACTIVE = "active"
    ROTATING_OUT = "rotating-out"
    REVOKED = "revoked"


@dataclass(frozen=True)
class KeyRecord:
    """Everything stored about one key. The key itself is not here: only its hash and prefix."""

    key_hash: str
    key_id: str
    prefix: str
    team: str
    description: str
    status: KeyStatus
    created_at: datetime
    deployment_id: str | None = None
    application_id: str | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    generation: int | None = None
    master_version: str | None = None
    rotated_from: str | None = None  # key_id of the key this one replaced, so its rotation can retire the chain

    def __post_init__(self) -> None:
        for name in ("created_at", "expires_at", "revoked_at", "last_used_at"):
            value = getattr(self, name)
            if value is not None and value.utcoffset() is None:
                raise ValueError(f"{name} must be timezone-aware")
        if not isinstance(self.status, KeyStatus):
            object.__setattr__(self, "status", KeyStatus(self.status))

    def is_usable(self, now: datetime) -> bool:
        if self.status is KeyStatus.REVOKED or self.revoked_at is not None:
            return False
        if self.status is KeyStatus.ROTATING_OUT:
            return self.expires_at is not None and now < self.expires_at
        return self.expires_at is None or now < self.expires_at
