"""Who is calling the proxy: resolved from a Liutong key, never from anything the caller claims."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class LimitOverride:
    """An operator's override of the owner's plan limits (limits.overrides); None fields keep the plan's value."""

    rpm: int | None = None
    tpm: int | None = None
    monthly_tokens: int | None = None
    models: tuple[str, ...] | None = None
    expires_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True)
class Principal:
    key_id: str
    key_prefix: str
    key_hash: str
    team: str
    plan_id: str
    deployment_id: str | None = None
    application_id: str | None = None
    resource_usage_id: str | None = None
    limits: LimitOverride | None = None

    @property
    def owner(self) -> str:
        """The account whose quota and balance a call draws on: the deployment, else the team."""
        return f"dep-{self.deployment_id}" if self.deployment_id else f"team-{self.team}"
