"""Who is calling the proxy: resolved from a Liutong key, never from anything the caller claims."""

from __future__ import annotations

from dataclasses import dataclass


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

    @property
    def owner(self) -> str:
        """The account whose quota and balance a call draws on: the deployment, else the team."""
        return f"dep-{self.deployment_id}" if self.deployment_id else f"team-{self.team}"
