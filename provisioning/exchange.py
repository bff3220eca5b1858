"""Key exchange: a managed application's identity token in, its current Liutong key out."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.clock import utc_now
from core.errors import (
    AuthenticationFailed,
    ConcurrencyConflict,
    NotFound,
    PermissionDenied,
    ServiceUnavailable,
)
from keystore.keys import display_prefix, hash_key
from keystore.master_secret import MasterSecretProvider
from keystore.repository import KeyRepository
from provisioning.arm import ArmClient
from provisioning.audit import AuditEvent, AuditLog
from provisioning.binding import binding_refusal, mirid_refusal
from provisioning.deployment_store import DeploymentStore
from provisioning.deployments import SUSPENDED_MESSAGE, Deployment
from provisioning.entra import TokenClaims, TokenValidator
from provisioning.key_slots import KeySlots
from provisioning.notifications import deployment_id_for, normalize_application_id
from provisioning.rotation import RotationPolicy, current_key, rotation_due

logger = logging.getLogger("liutong.exchange")

MAX_ATTEMPTS = 10


@dataclass(frozen=True)
class KeyGrant:
    key: str
    key_id: str
    prefix: str
    application_id: str
    plan: str | None
    rotates_at: datetime
    previous_key_valid_until: datetime | None

    def body(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "key_id": self.key_id,
            "prefix": self.prefix,
            "application_id": self.application_id,
            "plan": self.plan,
            "rotates_at": _iso(self.rotates_at),
            "previous_key_valid_until": _iso(self.previous_key_valid_until),
        }


class KeyExchange:
    def __init__(
        self,
        *,
        validator: TokenValidator,
        deployments: DeploymentStore,
        arm: ArmClient,
        keys: KeyRepository,
        masters: MasterSecretProvider,
        audit: AuditLog,
        policy: RotationPolicy,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._validator = validator
        self._deployments = deployments
        self._arm = arm
        self._masters = masters
        self._audit = audit
        self._now = now
        self._slots = KeySlots(store=deployments, keys=keys, masters=masters, policy=policy, audit=audit)

    async def authenticate(self, token: str) -> TokenClaims:
        return await self._validator.validate(token)

    async def exchange(
        self, claims: TokenClaims, application_id: str, *, force_rotate: bool = False, revoke_previous: bool = False
    ) -> KeyGrant:
        """The current key; `force_rotate` makes a new generation first, `revoke_previous` leaves no key in grace."""
        app_id = normalize_application_id(application_id)
        refusal = mirid_refusal(claims.xms_mirid, app_id)
        if refusal:
            raise AuthenticationFailed(refusal, code="wrong_resource")
        actor = _Actor(claims, app_id)
        deployment = await self._deployments.get(deployment_id_for(app_id))
        if deployment is None:
            await self._refuse(actor, None, "unknown application")
            raise NotFound("No marketplace deployment is known for this application.", param="application_id")
        try:
            self._check_state(deployment)
        except PermissionDenied as denied:
            await self._refuse(actor, deployment, denied.code or "refused")
            raise
        deployment = await self._ensure_binding(deployment, actor)
        return await self._current_grant(
            deployment, actor, force_rotate=force_rotate, revoke_previous=revoke_previous
        )

    def _check_state(self, deployment: Deployment) -> None:
        if deployment.refuses_keys:
            raise PermissionDenied(
                f"The application's deployment is {deployment.state}; no key is issued.", code="deployment_inactive"
            )
        if deployment.suspended:
            raise PermissionDenied(SUSPENDED_MESSAGE, code="account_suspended")

    async def _ensure_binding(self, deployment: Deployment, actor: _Actor) -> Deployment:
        if deployment.is_bound_to(actor.tid, actor.oid):
            return deployment
        application = await self._arm.get_application(actor.application_id)
        refusal = binding_refusal(deployment, application, tid=actor.tid, oid=actor.oid)
        if refusal:
            await self._refuse(actor, deployment, refusal)
            raise PermissionDenied(f"Binding refused: {refusal}.", code="binding_refused")
        for _ in range(MAX_ATTEMPTS):
            pinned = dataclasses.replace(deployment, bound_tid=actor.tid, bound_oid=actor.oid, bound_at=self._now())
            try:
                saved = await self._deployments.replace(pinned)
            except ConcurrencyConflict:
                deployment = await self._reload(deployment)
                if deployment.is_bound_to(actor.tid, actor.oid):
                    return deployment
                continue
            await self._audit.record(actor.event("bind", saved))
            logger.info("bound deployment %s to tid=%s oid=%s", saved.deployment_id[:16], actor.tid, actor.oid)
            return saved
        raise ServiceUnavailable("The deployment is changing too fast; retry.")

    async def _current_grant(
        self, deployment: Deployment, actor: _Actor, *, force_rotate: bool, revoke_previous: bool
    ) -> KeyGrant:
        audit_for = actor.audit_for
        for _ in range(MAX_ATTEMPTS):
            now = self._now()
            deployment = await self._slots.retire_previous(deployment, now=now)
            key = None
            if not force_rotate and not rotation_due(deployment, now):
                key = await self._existing_key(deployment)
            if key is None:
                base_generation = deployment.generation
                try:
                    deployment, key = await self._slots.rotate(deployment, now=now, audit_for=audit_for)
                except ConcurrencyConflict:
                    deployment = await self._slots.reload(deployment)
                    self._check_state(deployment)
                    if deployment.generation > base_generation:
                        force_rotate = False  # someone else's rotation of the same record counts as ours
                    continue
            if revoke_previous:
                deployment = await self._slots.drop_previous(deployment, now=now, audit_for=audit_for)
                if hash_key(key) != deployment.current_key_hash:
                    force_rotate = False  # the record moved on while the slot was emptied: hand out its current key
                    continue
            return _grant(deployment, key, now)
        raise ServiceUnavailable("The deployment is changing too fast; retry.")

    async def _existing_key(self, deployment: Deployment) -> str | None:
        if deployment.master_version is None:
            return None
        master = await self._masters.get(deployment.master_version)
        key = current_key(deployment, master) if master is not None else None
        if key is None:
            logger.warning("master secret %s cannot re-derive the current key: rotating", deployment.master_version)
        return key

    async def _reload(self, deployment: Deployment) -> Deployment:
        return await self._slots.reload(deployment)

    async def _refuse(self, actor: _Actor, deployment: Deployment | None, reason: str) -> None:
        event = actor.event("refuse", deployment, outcome="refused", reason=reason)
        await self._audit.record_refusal(event)
        logger.info("refused key exchange tid=%s oid=%s: %s", actor.tid, actor.oid, reason)


class _Actor:
    def __init__(self, claims: TokenClaims, application_id: str) -> None:
        self.tid = claims.tid.lower()
        self.oid = claims.oid.lower()
        self.application_id = application_id

    def event(self, action: str, deployment: Deployment | None, **fields: Any) -> AuditEvent:
        return AuditEvent(
            action=f"provisioning.{action}",
            actor_oid=self.oid,
            actor_tid=self.tid,
            plan_id=deployment.plan_id if deployment else None,
            resource_id=self.application_id,
            **fields,
        )

    def audit_for(self, action: str, deployment: Deployment, key_id: str | None, reason: str | None) -> AuditEvent:
        return self.event(action, deployment, key_id=key_id, reason=reason)


def _grant(deployment: Deployment, key: str, now: datetime) -> KeyGrant:
    assert deployment.current_key_id is not None and deployment.rotates_at is not None
    previous = deployment.previous_valid_until
    return KeyGrant(
        key=key,
        key_id=deployment.current_key_id,
        prefix=display_prefix(key),
        application_id=deployment.application_id,
        plan=deployment.plan_id,
        rotates_at=deployment.rotates_at,
        previous_key_valid_until=previous if previous is not None and previous > now else None,
    )


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value is not None else None
