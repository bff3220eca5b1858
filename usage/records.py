"""One usage record per proxied request: metadata only.

Never prompt text, embeddings input, output, IP addresses, user agents or headers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class UsageRecord:
    request_id: str
    at: datetime
    team: str
    key_id: str
    plan_id: str
    model_alias: str
    endpoint: str
    status: int
    latency_ms: int
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    plan_tokens: int = 0
    estimated: bool = False
    deployment_id: str | None = None
    resource_usage_id: str | None = None
    # Already inside completion_tokens (as OpenAI counts them); recorded beside it, never added to it.
    reasoning_tokens: int = 0
    # Media calls: what they are metered in (usage.groups.UNITS) and how many; never the media itself.
    unit: str | None = None
    quantity: int = 0
    auto: bool = False  # the caller asked for model "auto" and model_alias is what it chose
    byok: bool = False  # served with the customer's own provider credential: plan_tokens is only the plan's fee


class UsageSink(Protocol):
    async def record(self, record: UsageRecord) -> None:
        """Default mode: enqueue and return at once. Sync mode: return after the batch committed."""
        ...
