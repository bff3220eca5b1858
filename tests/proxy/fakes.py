"""Small stand-ins for the proxy's collaborators that record what the proxy asked of them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from azure.core.credentials import AccessToken

from core.errors import AuthenticationFailed
from keystore.principal import Principal
from limits.plans import Plan
from usage.records import UsageRecord

CALLER_KEY = "lt-caller-key-0123456789abcdefghijklmnopqrstuvwxyz"
PRINCIPAL = Principal(
    key_id="key-1", key_prefix="lt-caller", key_hash="0" * 64, team="team-a", plan_id="test-plan",
    deployment_id="dep-1", resource_usage_id="usage-1",
)
RATE_HEADERS = {
    "x-ratelimit-limit-requests": "600",
    "x-ratelimit-remaining-requests": "599",
    "x-ratelimit-limit-tokens": "100000",
    "x-ratelimit-remaining-tokens": "99000",
    "x-ratelimit-reset-requests": "100ms",
    "x-ratelimit-reset-tokens": "600ms",
}


class FakeResolver:
    async def resolve(self, key: str) -> Principal:
        if key != CALLER_KEY:
            raise AuthenticationFailed("Incorrect API key provided.", code="invalid_api_key")
        return PRINCIPAL


@dataclass
class FakeAdmission:
    log: list[tuple[str, Any]]

    @property
    def headers(self) -> dict[str, str]:
        return dict(RATE_HEADERS)

    async def settle(self, *, plan_tokens: int) -> None:
        self.log.append(("settle", plan_tokens))

    async def refund(self) -> None:
        self.log.append(("refund", None))


@dataclass
class RecordingLimiter:
    log: list[tuple[str, Any]] = field(default_factory=list)

    async def admit(
        self, principal: Principal, plan: Plan, *, model_alias: str, estimated_plan_tokens: int
    ) -> FakeAdmission:
        self.log.append(("admit", (model_alias, estimated_plan_tokens)))
        return FakeAdmission(self.log)

    def calls(self, kind: str) -> list[Any]:
        return [value for name, value in self.log if name == kind]


@dataclass
class RecordingSink:
    records: list[UsageRecord] = field(default_factory=list)

    async def record(self, record: UsageRecord) -> None:
        self.records.append(record)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[UsageRecord]:
        """Records are written on the server's thread, sometimes after the caller has left."""
        deadline = time.monotonic() + timeout
        while len(self.records) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.records)


class FakeCredential:
    def __init__(self, token: str = "entra-token-for-azure-openai", lifetime: int = 3600) -> None:
        self.token = token
        self.lifetime = lifetime
        self.scopes: list[tuple[str, ...]] = []

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(self.token, int(time.time()) + self.lifetime)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> FakeCredential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


@dataclass
class FakeSecrets:
    values: dict[str, str]
    reads: list[str] = field(default_factory=list)

    async def get_secret(self, name: str) -> str:
        self.reads.append(name)
        return self.values[name]

    async def close(self) -> None:
        return None
