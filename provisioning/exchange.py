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
from keystore.keys import display_prefix
from keystore.master_secret import MasterSecretProvider
from keystore.repository import KeyRepository
from provisioning.arm import ArmClient
from provisioning.audit import AuditEvent, AuditLog
from provisioning.binding import binding_refusal, mirid_refusal
from provisioning.deployment_store import DeploymentStore
from provisioning.deployments import Deployment
from provisioning.entra import TokenClaims, TokenValidator
from provisioning.notifications import deployment_id_for, normalize_application_id
from provisioning.rotation import RotationPolicy, current_key, rotate, rotation_due

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
        self._keys = keys
        self._masters = masters
        self._audit = audit
        self._policy = policy
        self._now = now

    async def authenticate(self, token: str) -> TokenClaims:
        return await self._validator.validate(token)

    async def exchange(self, claims: TokenClaims, application_id: str, *, force_rotate: bool = False) -> KeyGrant:
        app_id = normalize_application_id(application_id)
        refusal = mirid_refusal(claims.xms_mirid, app_id)
        if refusal:
            raise AuthenticationFailed(refusal, code="wrong_resource")
        actor = _Actor(claims, app_id)
        deployment = await self._deployments.get(deployment_id_for(app_id))
        if deployment is None:
            await self._refuse(actor, None, "unknown application")
            raise NotFound("No marketplace deployment is known for this application.", param="application_id")
        self._check_state(deployment)
        deployment = await self._ensure_binding(deployment, actor)
        return await self._current_grant(deployment, actor, force_rotate=force_rotate)

    def _check_state(self, deployment: Deployment) -> None:
        if deployment.refuses_keys:
            raise PermissionDenied(
                f"The application's deployment is {deployment.state}; no key is issued.", code="deployment_inactive"
            )

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

    async def _current_grant(self, deployment: Deployment, actor: _Actor, *, force_rotate: bool) -> KeyGrant:
        for _ in range(MAX_ATTEMPTS):
            now = self._now()
            deployment = await self._retire_previous(deployment, now)
            if not force_rotate and not rotation_due(deployment, now):
                grant = await self._existing_grant(deployment, now)
                if grant is not None:
                    return grant
            base_generation = deployment.generation
            try:
                return await self._rotate(deployment, actor, now)
            except ConcurrencyConflict:
                deployment = await self._reload(deployment)
                self._check_state(deployment)
                if deployment.generation > base_generation:
                    force_rotate = False
        raise ServiceUnavailable("The deployment is changing too fast; retry.")

    async def _existing_grant(self, deployment: Deployment, now: datetime) -> KeyGrant | None:
        if deployment.master_version is None:
            return None
        master = await self._masters.get(deployment.master_version)
        key = current_key(deployment, master) if master is not None else None
        if key is None:
            logger.warning("master secret %s cannot re-derive the current key: rotating", deployment.master_version)
            return None
        return _grant(deployment, key, now)

    async def _rotate(self, deployment: Deployment, actor: _Actor, now: datetime) -> KeyGrant:
        master = await self._masters.current()
        rotation = rotate(deployment, master, self._policy, now)
        # A key row whose generation loses the race is never handed out and nobody can know it
        # (derivation needs the master secret); it is not revoked, because the winner of the
        # same generation derives the very same key.
        await self._keys.insert(rotation.record)
        saved = await self._deployments.replace(rotation.deployment)
        action = "mint" if rotation.record.generation == 1 else "rotate"
        await self._audit.record(actor.event(action, saved, key_id=rotation.record.key_id))
        logger.info("%s key %s (%s)", action, rotation.record.key_id, rotation.record.prefix)
        saved = await self._retire_previous(saved, now)
        return _grant(saved, rotation.key, now)

    async def _retire_previous(self, deployment: Deployment, now: datetime) -> Deployment:
        """Start the grace period of the previous key; repeated until it is recorded as done."""
        if deployment.previous_retired or deployment.previous_key_hash is None:
            return deployment
        until = deployment.previous_valid_until or now
        await self._keys.retire(deployment.previous_key_hash, until=until)
        try:
            return await self._deployments.replace(dataclasses.replace(deployment, previous_retired=True))
        except ConcurrencyConflict:
            return await self._reload(deployment)

    async def _reload(self, deployment: Deployment) -> Deployment:
        latest = await self._deployments.get(deployment.deployment_id)
        if latest is None:
            raise NotFound("No marketplace deployment is known for this application.", param="application_id")
        return latest

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
