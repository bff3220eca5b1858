"""The two key slots of a deployment record, current and previous, and how a rotation moves them.

At most two keys of a deployment are valid: the current one and the one it replaced, in its grace.
The key a rotation pushes out of the previous slot is revoked *before* the record is written. If the
write then loses a race, the winner either rotated the same record (pushing out the same key) or made
another change after which the retry pushes it out anyway; if the process dies in between, the key
stays revoked. So no interleaving leaves a third valid key, and every writer serializes on the ETag.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime

from core.errors import ConcurrencyConflict, NotFound, ServiceUnavailable
from keystore.master_secret import MasterSecretProvider
from keystore.models import NEVER_ISSUED, NO_GRACE, SUPERSEDED
from keystore.repository import KeyRepository
from provisioning.audit import AuditEvent, AuditLog
from provisioning.deployment_store import DeploymentStore
from provisioning.deployments import Deployment
from provisioning.rotation import Rotation, RotationPolicy, rotate

logger = logging.getLogger("liutong.keyslots")

MAX_ATTEMPTS = 10

# (action, deployment, key_id, reason) -> the audit row, so each caller names its own actor and action prefix.
AuditFor = Callable[[str, Deployment, "str | None", "str | None"], AuditEvent]


class KeySlots:
    def __init__(
        self,
        *,
        store: DeploymentStore,
        keys: KeyRepository,
        masters: MasterSecretProvider,
        policy: RotationPolicy,
        audit: AuditLog,
    ) -> None:
        self._store = store
        self._keys = keys
        self._masters = masters
        self._policy = policy
        self._audit = audit

    async def rotate(self, deployment: Deployment, *, now: datetime, audit_for: AuditFor) -> tuple[Deployment, str]:
        """One attempt at the next generation; ConcurrencyConflict when the record changed since it was read."""
        rotation = rotate(deployment, await self._masters.current(), self._policy, now)
        await self._keys.insert(rotation.record)
        if deployment.previous_key_hash is not None:
            await self._revoke(deployment, deployment.previous_key_id, deployment.previous_key_hash,
                               now=now, reason=SUPERSEDED, audit_for=audit_for)
        try:
            saved = await self._store.replace(rotation.deployment)
        except ConcurrencyConflict:
            await self._revoke_if_orphaned(rotation, now=now, audit_for=audit_for)
            raise
        action = "mint" if rotation.record.generation == 1 else "rotate"
        await self._audit.record(audit_for(action, saved, rotation.record.key_id, None))
        logger.info("%s key %s (%s)", action, rotation.record.key_id, rotation.record.prefix)
        return await self.retire_previous(saved, now=now), rotation.key

    async def retire_previous(self, deployment: Deployment, *, now: datetime) -> Deployment:
        """Starts the grace period of the previous key; repeated by every writer until the record says done."""
        if deployment.previous_retired or deployment.previous_key_hash is None:
            return deployment
        until = deployment.previous_valid_until or now
        await self._keys.retire(deployment.previous_key_hash, until=until)
        try:
            return await self._store.replace(dataclasses.replace(deployment, previous_retired=True))
        except ConcurrencyConflict:
            return await self.reload(deployment)

    async def drop_previous(self, deployment: Deployment, *, now: datetime, audit_for: AuditFor) -> Deployment:
        """Revokes the previous key and empties its slot, leaving the current key the only valid one."""
        for _ in range(MAX_ATTEMPTS):
            if deployment.previous_key_hash is None:
                return deployment
            await self._revoke(deployment, deployment.previous_key_id, deployment.previous_key_hash,
                               now=now, reason=NO_GRACE, audit_for=audit_for)
            emptied = dataclasses.replace(
                deployment, previous_key_id=None, previous_key_hash=None, previous_valid_until=None,
                previous_retired=True,
            )
            try:
                return await self._store.replace(emptied)
            except ConcurrencyConflict:
                deployment = await self.reload(deployment)
        raise ServiceUnavailable("The deployment is changing too fast; retry.", code="deployment_contended")

    async def reload(self, deployment: Deployment) -> Deployment:
        latest = await self._store.get(deployment.deployment_id)
        if latest is None:
            raise NotFound("No marketplace deployment is known for this application.", param="application_id")
        return latest

    async def _revoke_if_orphaned(self, rotation: Rotation, *, now: datetime, audit_for: AuditFor) -> None:
        # Generations only grow: once the record is past ours without naming our key, no writer can still install
        # it. (Racers from the same record derive the very same key, so normally the winner names it.)
        latest = await self.reload(rotation.deployment)
        ours = rotation.record
        named = {latest.current_key_hash, latest.previous_key_hash}
        if ours.generation is not None and latest.generation >= ours.generation and ours.key_hash not in named:
            await self._revoke(latest, ours.key_id, ours.key_hash, now=now, reason=NEVER_ISSUED, audit_for=audit_for)

    async def _revoke(
        self, deployment: Deployment, key_id: str | None, key_hash: str, *, now: datetime, reason: str,
        audit_for: AuditFor,
    ) -> None:
        if await self._keys.revoke(key_hash, at=now):
            await self._audit.record(audit_for("revoke", deployment, key_id, reason))
            logger.info("revoked key %s of deployment %s: %s", key_id, deployment.deployment_id[:16], reason)
