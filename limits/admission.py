"""The contract between the proxy and plan enforcement (implemented in limits.limiter)."""

from __future__ import annotations

from typing import Protocol

from keystore.principal import Principal
from limits.plans import Plan


class Admission(Protocol):
    """A call let through: its rate-limit headers, and what to do once its real size is known."""

    @property
    def headers(self) -> dict[str, str]:
        """x-ratelimit-limit-requests, -remaining-requests, -limit-tokens, -remaining-tokens, -reset-*."""
        ...

    async def settle(self, *, plan_tokens: int) -> None:
        """The call finished and consumed `plan_tokens` (rates applied): replace the estimate."""
        ...

    async def refund(self) -> None:
        """The call failed before consuming anything billable: release the reservation."""
        ...


class Limiter(Protocol):
    async def admit(
        self, principal: Principal, plan: Plan, *, model_alias: str, estimated_plan_tokens: int
    ) -> Admission:
        """Let a call through or raise RateLimited / InsufficientQuota (core.errors)."""
        ...
