"""Audit trail of provisioning events: who, what, when, which resource and key id — never a key."""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from core.clock import utc_now
from core.tables import Tables, storage_errors

logger = logging.getLogger("liutong.audit")


@dataclass(frozen=True)
class AuditEvent:
    action: str
    outcome: str = "ok"
    reason: str | None = None
    actor_oid: str | None = None
    actor_tid: str | None = None
    plan_id: str | None = None
    resource_id: str | None = None
    key_id: str | None = None
    at: datetime = field(default_factory=utc_now)


class AuditLog:
    """Rows partitioned by UTC day, ordered by time within it."""

    def __init__(self, tables: Tables) -> None:
        self._table = tables.table("audit")

    async def record(self, event: AuditEvent, *, idempotency_key: str | None = None) -> None:
        """Durable write; storage failures propagate (the caller answers 5xx and is retried).

        With an idempotency key the row is upserted under it, so a retried delivery of the
        same event leaves one row, and a retry after a failed write fills it in.
        """
        suffix = idempotency_key or uuid.uuid4().hex[:12]
        entity: dict[str, Any] = {
            "PartitionKey": event.at.strftime("%Y%m%d"),
            "RowKey": f"{event.at.strftime('%H%M%S%f')}-{suffix}",
        }
        entity.update({k: v for k, v in asdict(event).items() if v is not None})
        with storage_errors():
            await self._table.upsert_entity(entity)

    async def record_refusal(self, event: AuditEvent) -> None:
        """Refusals are audited best-effort: a storage outage must not turn a 401 into a 503."""
        try:
            await self.record(event)
        except Exception as error:  # noqa: BLE001 - logged, the refusal still stands
            logger.warning("audit write failed for %s: %s", event.action, type(error).__name__)

    async def list_day(self, day: datetime) -> list[dict[str, Any]]:
        with storage_errors():
            query = self._table.query_entities(f"PartitionKey eq '{day.strftime('%Y%m%d')}'")
            return [dict(e) async for e in query]
