"""Marketplace managed-application notifications: authenticate, apply, revoke on delete.

ARM retries only on 5xx/429 (for 10 hours) and drops the event on any other answer, so a
200 is returned only after every write has landed; storage failures surface as 503.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from core.clock import utc_now
from core.errors import AuthenticationFailed, ConcurrencyConflict, ServiceUnavailable
from keystore.repository import KeyRepository
from provisioning.audit import AuditEvent, AuditLog
from provisioning.deployment_store import DeploymentStore
from provisioning.deployments import Deployment, apply_event, event_key
from provisioning.notifications import MarketplaceEvent, deployment_id_for, parse_event

logger = logging.getLogger("liutong.webhook")

MAX_ATTEMPTS = 10


class MarketplaceWebhook:
    def __init__(
        self,
        *,
        secret: str,
        deployments: DeploymentStore,
        keys: KeyRepository,
        audit: AuditLog,
        on_deleting: Callable[[Deployment], Awaitable[None]] | None = None,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._secret = secret.encode()
        self._deployments = deployments
        self._keys = keys
        self._audit = audit
        self._on_deleting = on_deleting
        self._now = now

    def authorize(self, sig: str | None) -> None:
        # Constant-time compare; an unset secret refuses everything rather than accepting "".
        presented = (sig or "").encode()
        if not self._secret or not hmac.compare_digest(presented, self._secret):
            raise AuthenticationFailed("Invalid or missing notification signature.", code="invalid_signature")

    async def handle(self, payload: dict[str, Any]) -> Deployment:
        event = parse_event(payload)
        deployment, changed = await self._apply(event)
        # Upserted on every delivery (same row each time): a retry after a failed audit write
        # fills it in, and a replay leaves it as it was.
        await self._audit.record(_webhook_audit(event), idempotency_key=_event_digest(event))
        if changed:
            logger.info(
                "deployment %s: %s %s (plan %s)",
                deployment.deployment_id[:16], event.event_type, event.provisioning_state, deployment.plan_id,
            )
        if deployment.revokes_keys:
            await self._revoke_keys(deployment, event)
            if self._on_deleting is not None:
                await self._on_deleting(deployment)
        return deployment

    async def _apply(self, event: MarketplaceEvent) -> tuple[Deployment, bool]:
        deployment_id = deployment_id_for(event.application_id)
        for _ in range(MAX_ATTEMPTS):
            current = await self._deployments.get(deployment_id)
            updated = apply_event(current, event)
            if updated is None:
                assert current is not None
                return current, False
            try:
                return await self._deployments.save(updated), True
            except ConcurrencyConflict:
                continue
        raise ServiceUnavailable("The deployment record is changing too fast; retry.")

    async def _revoke_keys(self, deployment: Deployment, event: MarketplaceEvent) -> None:
        revoked = await self._keys.revoke_all(deployment_id=deployment.deployment_id, at=self._now())
        for key_id in revoked:
            audit = AuditEvent(
                action="provisioning.revoke",
                reason=f"deployment {deployment.state}",
                plan_id=deployment.plan_id,
                resource_id=deployment.application_id,
                key_id=key_id,
            )
            await self._audit.record(audit)
            logger.info("revoked key %s of deployment %s", key_id, deployment.deployment_id[:16])


def _webhook_audit(event: MarketplaceEvent) -> AuditEvent:
    return AuditEvent(
        action=f"provisioning.webhook.{event.event_type.lower()}",
        reason=event.provisioning_state,
        plan_id=event.plan.name if event.plan else None,
        resource_id=event.application_id,
        at=event.event_time,
    )


def _event_digest(event: MarketplaceEvent) -> str:
    return hashlib.sha256(f"{event.application_id}|{event_key(event)}".encode()).hexdigest()[:24]
