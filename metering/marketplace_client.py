"""Client of the Marketplace Metering Service's batch API (`batchUsageEvent`, api-version 2018-08-31)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

import httpx
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import ClientAuthenticationError

from core.settings import Settings
from provisioning.credentials import arm_credential

METERING_RESOURCE = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7"
SCOPE = f"{METERING_RESOURCE}/.default"
API_VERSION = "2018-08-31"
MAX_BATCH = 25

log = logging.getLogger("metering.marketplace")


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    EXPIRED = "expired"
    RETRY = "retry"
    ERROR = "error"


# Per-event statuses that no resend can fix; anything unknown is treated the same way.
_STATUS_OUTCOMES = {
    "Accepted": Outcome.ACCEPTED,
    "Duplicate": Outcome.DUPLICATE,
    "Expired": Outcome.EXPIRED,
    "Error": Outcome.RETRY,
}


@dataclass(frozen=True)
class UsageEvent:
    resource_id: str
    dimension: str
    hour: datetime
    quantity: Decimal
    plan_id: str

    @property
    def key(self) -> tuple[str, str, datetime]:
        return self.resource_id.lower(), self.dimension, self.hour

    def body(self) -> dict[str, Any]:
        return {
            "resourceId": self.resource_id,
            # Quantities carry at most 6 decimals, so the float's shortest repr is the decimal itself.
            "quantity": float(self.quantity),
            "dimension": self.dimension,
            "effectiveStartTime": self.hour.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "planId": self.plan_id,
        }


@dataclass(frozen=True)
class EventResult:
    event: UsageEvent
    outcome: Outcome
    status: str
    usage_event_id: str | None = None
    accepted_quantity: Decimal | None = None
    error: str | None = None


class MarketplaceClient:
    def __init__(
        self, *, http: httpx.AsyncClient, credential: AsyncTokenCredential, endpoint: str,
        timeout: float | None = None,
    ) -> None:
        self._http = http
        self._credential = credential
        self._url = f"{endpoint.rstrip('/')}/api/batchUsageEvent"
        self._timeout = timeout

    async def submit(self, events: Sequence[UsageEvent]) -> list[EventResult]:
        results: list[EventResult] = []
        for start in range(0, len(events), MAX_BATCH):
            results.extend(await self._submit_batch(events[start : start + MAX_BATCH]))
        return results

    async def _submit_batch(self, events: Sequence[UsageEvent]) -> list[EventResult]:
        request_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
        try:
            token = await self._credential.get_token(SCOPE)
            response = await self._http.post(
                self._url,
                params={"api-version": API_VERSION},
                json={"request": [event.body() for event in events]},
                headers={
                    "authorization": f"Bearer {token.token}",
                    "x-ms-requestid": request_id,
                    "x-ms-correlationid": correlation_id,
                },
                timeout=httpx.USE_CLIENT_DEFAULT if self._timeout is None else self._timeout,
            )
        except (httpx.TransportError, ClientAuthenticationError) as error:
            log.warning("metering call failed (%s); %d events retry next run", type(error).__name__, len(events))
            return _all(events, Outcome.RETRY, type(error).__name__, str(error) or type(error).__name__)
        log.info(
            "batchUsageEvent %d events -> %d (x-ms-requestid %s, x-ms-correlationid %s)",
            len(events), response.status_code, request_id, correlation_id,
        )
        return _interpret(events, response)


def _interpret(events: Sequence[UsageEvent], response: httpx.Response) -> list[EventResult]:
    status = response.status_code
    if status == 200:
        try:
            return _per_event(events, response.json())
        except (ValueError, TypeError, KeyError) as error:
            return _all(events, Outcome.RETRY, "200", f"unreadable batch response: {error}")
    detail = f"HTTP {status}: {response.text[:300]}"
    if status == 400:
        log.error("metering rejected a whole batch: %s", detail)
        return _all(events, Outcome.ERROR, "400", detail)
    if status in (401, 403):
        # A refused token is configuration (Partner Center technical configuration), not the usage:
        # keep it and retry every run, loudly, rather than drop it.
        log.error("metering refused the service's token: %s", detail)
    return _all(events, Outcome.RETRY, str(status), detail)


def _per_event(events: Sequence[UsageEvent], body: Any) -> list[EventResult]:
    by_key = {_result_key(item): item for item in body["result"] if isinstance(item, dict)}
    return [_event_result(event, by_key.get(event.key)) for event in events]


def _event_result(event: UsageEvent, item: dict[str, Any] | None) -> EventResult:
    if item is None:
        return EventResult(event, Outcome.RETRY, "missing", error="the batch response has no result for this event")
    status = str(item.get("status", ""))
    outcome = _STATUS_OUTCOMES.get(status, Outcome.ERROR)
    error = item.get("error") if isinstance(item.get("error"), dict) else None
    if outcome is Outcome.DUPLICATE:
        accepted = ((error or {}).get("additionalInfo") or {}).get("acceptedMessage") or {}
        return EventResult(
            event, outcome, status, usage_event_id=accepted.get("usageEventId"),
            accepted_quantity=_decimal(accepted.get("quantity")),
        )
    return EventResult(
        event, outcome, status, usage_event_id=item.get("usageEventId"),
        accepted_quantity=_decimal(item.get("quantity")) if outcome is Outcome.ACCEPTED else None,
        error=None if outcome is Outcome.ACCEPTED else f"{status}: {_error_text(error)}",
    )


def _result_key(item: dict[str, Any]) -> tuple[str, str, datetime] | None:
    try:
        hour = datetime.fromisoformat(str(item["effectiveStartTime"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None
    hour = hour if hour.tzinfo else hour.replace(tzinfo=UTC)
    return str(item.get("resourceId", "")).lower(), str(item.get("dimension", "")), hour.astimezone(UTC)


def _error_text(error: dict[str, Any] | None) -> str:
    if not error:
        return "no error detail"
    details = [d.get("message", "") for d in error.get("details") or [] if isinstance(d, dict)]
    return "; ".join(m for m in [error.get("message", ""), *details] if m)[:500]


def _decimal(value: Any) -> Decimal | None:
    try:
        return None if value is None else Decimal(str(value))
    except InvalidOperation:
        return None


def _all(events: Sequence[UsageEvent], outcome: Outcome, status: str, error: str) -> list[EventResult]:
    return [EventResult(event, outcome, status, error=error) for event in events]


async def metering_credential(settings: Settings, *, service: AsyncTokenCredential) -> AsyncTokenCredential:
    """The service's managed identity, or (metering_credential=msal) the publisher app registration
    entered in Partner Center — the same one (arm_tenant_id, arm_client_id, secret in Key Vault) as ARM's."""
    if settings.metering_credential == "managed_identity":
        return service
    return await arm_credential(settings.model_copy(update={"arm_credential": "msal"}), service=service)
