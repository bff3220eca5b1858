"""Operators and marketplace deployments: list, show with history, force a rotation, revoke on compromise.

Writes go through DeploymentStore.replace (ETag) and are retried on conflict, so a key exchange running
at the same moment is never lost: whichever write lands second re-reads and decides again.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from admin.audit_view import AuditView
from admin.auth import Operator
from admin.deployment_views import DEPLOYMENT_ID, deployment_id
from admin.team_store import decode_token, encode_token
from core.clock import utc_now
from core.errors import ConcurrencyConflict, Conflict, InvalidRequest, NotFound, ServiceUnavailable
from core.tables import Tables, storage_errors
from keystore.master_secret import MasterSecretProvider
from keystore.repository import KeyRepository
from provisioning.audit import AuditEvent, AuditLog
from provisioning.deployment_store import DeploymentStore, deployment_from_entity
from provisioning.deployments import Deployment
from provisioning.key_slots import AuditFor, KeySlots
from provisioning.notifications import deployment_id_for
from provisioning.rotation import RotationPolicy

logger = logging.getLogger("liutong.admin")

MAX_ATTEMPTS = 10
HISTORY_DAYS = 90  # history covers the audit rows of the last 90 UTC days (the audit table's day partitions)
HISTORY_LIMIT = 1000
# A list request reads at most this many rows, so a rare state filter cannot make one request scan everything.
SCAN_LIMIT = 1000
_STATE = re.compile(r"[A-Za-z]{1,32}")
_PLAN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_ROW = "deployment"


@dataclass(frozen=True)
class DeploymentPage:
    deployments: list[Deployment]
    next_token: str | None


@dataclass(frozen=True)
class Revocation:
    deployment: Deployment
    revoked_key_ids: list[str]


def _filter(params: Mapping[str, str], name: str, pattern: re.Pattern[str]) -> str | None:
    value = params.get(name)
    if value is not None and not pattern.fullmatch(value):
        raise InvalidRequest(f"Invalid '{name}' filter.", param=name)
    return value


def _after(token: str | None) -> str | None:
    position = decode_token(token)
    if position is None:
        return None
    after = position.get("after", "")
    if set(position) != {"after"} or not DEPLOYMENT_ID.fullmatch(after):
        raise InvalidRequest("Invalid continuation token.", param="continuation_token")
    return after


class AdminDeployments:
    def __init__(
        self,
        *,
        tables: Tables,
        store: DeploymentStore,
        keys: KeyRepository,
        masters: MasterSecretProvider,
        policy: RotationPolicy,
        audit: AuditLog,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._table = tables.table("deployments")
        self._history = AuditView(tables)
        self._store = store
        self._keys = keys
        self._audit = audit
        self._now = now
        self._slots = KeySlots(store=store, keys=keys, masters=masters, policy=policy, audit=audit)

    # Reading

    async def page(self, params: Mapping[str, str], *, size: int, token: str | None) -> DeploymentPage:
        state = _filter(params, "state", _STATE)
        plan = _filter(params, "plan", _PLAN)
        after = _after(token)
        if "application_id" in params:
            return await self._by_application(params["application_id"], state, plan)
        found: list[Deployment] = []
        scanned, last = 0, None
        with storage_errors():
            async for entity in self._query(after, plan, size + 1):
                deployment = deployment_from_entity(entity)
                scanned, last = scanned + 1, deployment.deployment_id
                if state is None or deployment.state.lower() == state.lower():
                    found.append(deployment)
                if len(found) > size or scanned >= SCAN_LIMIT:
                    break
        if len(found) > size:
            return DeploymentPage(found[:size], encode_token({"after": found[size - 1].deployment_id}))
        # The scan stopped early without filling the page: the next page resumes after the last row read.
        resume = last if scanned >= SCAN_LIMIT else None
        return DeploymentPage(found, encode_token({"after": resume}) if resume else None)

    def _query(self, after: str | None, plan: str | None, per_page: int) -> Any:
        clauses, values = ["RowKey eq @row"], {"row": _ROW}
        if after is not None:
            clauses.append("PartitionKey gt @after")
            values["after"] = after
        if plan is not None:
            clauses.append("plan_name eq @plan")
            values["plan"] = plan
        return self._table.query_entities(" and ".join(clauses), parameters=values, results_per_page=per_page)

    async def _by_application(self, application_id: str, state: str | None, plan: str | None) -> DeploymentPage:
        try:
            found = await self._store.get(deployment_id_for(application_id))
        except InvalidRequest:
            raise InvalidRequest("Invalid 'application_id' filter.", param="application_id") from None
        keep = found is not None and (state is None or found.state.lower() == state.lower())
        keep = keep and (plan is None or (found is not None and found.plan_id == plan))
        return DeploymentPage([found] if keep and found is not None else [], None)

    async def get(self, raw_id: str) -> Deployment:
        found = await self._store.get(deployment_id(raw_id))
        if found is None:
            raise NotFound("No such deployment.", param="deployment_id")
        return found

    async def history(self, deployment: Deployment) -> tuple[list[dict[str, Any]], bool]:
        today = self._now().astimezone(UTC).date()
        # One day ahead: webhook rows are stamped with ARM's event time, which may run slightly ahead.
        return await self._history.resource_history(
            deployment.application_id, since=today - timedelta(days=HISTORY_DAYS), until=today + timedelta(days=1),
            limit=HISTORY_LIMIT,
        )

    # Writing

    async def rotate(self, op: Operator, raw_id: str, why: str | None, *, revoke_previous: bool = False) -> Deployment:
        """A new generation now, as on a forced exchange: the key it pushes out of the previous slot is revoked,
        the replaced key keeps the policy's grace, or is revoked too with `revoke_previous` (a leaked key)."""
        audit_for = self._audit_for(op, why)
        for _ in range(MAX_ATTEMPTS):
            current = await self.get(raw_id)
            self._check_rotatable(current)
            now = self._now()
            try:
                saved, _ = await self._slots.rotate(current, now=now, audit_for=audit_for)
            except ConcurrencyConflict:
                continue
            if revoke_previous:
                saved = await self._slots.drop_previous(saved, now=now, audit_for=audit_for)
            elif saved.previous_key_id is not None:
                await self._record(op, "retire", saved, saved.previous_key_id, why)
            logger.info("admin rotated deployment %s to %s", saved.deployment_id[:16], saved.current_key_id)
            return saved
        raise ServiceUnavailable("The deployment is changing too fast; retry.", code="deployment_contended")

    def _audit_for(self, op: Operator, why: str | None) -> AuditFor:
        def event(action: str, deployment: Deployment, key_id: str | None, reason: str | None) -> AuditEvent:
            # resource_id is the application ID, as on webhook and exchange rows: a deployment's history is one filter.
            return AuditEvent(
                action=f"admin.deployment.{action}", reason="; ".join(r for r in (reason, why) if r) or None,
                actor_oid=op.oid, actor_tid=op.tid, plan_id=deployment.plan_id,
                resource_id=deployment.application_id, key_id=key_id, at=self._now(),
            )

        return event

    @staticmethod
    def _check_rotatable(deployment: Deployment) -> None:
        if deployment.refuses_keys:
            raise Conflict(
                f"The deployment is {deployment.state}; it gets no keys.", code="deployment_inactive",
                param="deployment_id",
            )
        if deployment.current_key_hash is None or deployment.bound_tid is None:
            raise Conflict(
                "The deployment has no current key: its application has not exchanged one.", code="no_key",
                param="deployment_id",
            )

    async def suspend(self, op: Operator, raw_id: str, why: str | None) -> Deployment:
        """Its keys get 403 account_suspended and its key exchange mints nothing, until resume; keys are kept."""
        return await self._set_suspended(op, raw_id, why, suspend=True)

    async def resume(self, op: Operator, raw_id: str, why: str | None) -> Deployment:
        """The current key works again (within the principal cache TTL); no new generation is needed."""
        return await self._set_suspended(op, raw_id, why, suspend=False)

    async def _set_suspended(self, op: Operator, raw_id: str, why: str | None, *, suspend: bool) -> Deployment:
        for _ in range(MAX_ATTEMPTS):
            current = await self.get(raw_id)
            if current.state.lower() == "deleted":
                raise NotFound("The deployment is deleted.", param="deployment_id")
            if current.suspended == suspend:
                return current  # already so: nothing to write or audit
            now = self._now()
            changed = dataclasses.replace(
                current, suspended_at=now if suspend else None, suspended_reason=why if suspend else None
            )
            try:
                saved = await self._store.replace(changed)
            except ConcurrencyConflict:
                continue
            await self._record(op, "suspend" if suspend else "resume", saved, None, why)
            logger.info("admin %s deployment %s", "suspended" if suspend else "resumed", saved.deployment_id[:16])
            return saved
        raise ServiceUnavailable("The deployment is changing too fast; retry.", code="deployment_contended")

    async def revoke(self, op: Operator, raw_id: str, why: str | None) -> Revocation:
        """Revokes the current and previous keys at once and empties the key slot of the record.

        Keys are revoked before the record is written, so a retry after a failure still finds them;
        the next key exchange finds no current key and derives a fresh generation.
        """
        revoked: list[str] = []
        for _ in range(MAX_ATTEMPTS):
            current = await self.get(raw_id)
            if current.generation == 0:
                raise Conflict("No key was ever issued for this deployment.", code="no_key", param="deployment_id")
            held = [(i, h) for i, h in ((current.current_key_id, current.current_key_hash),
                                        (current.previous_key_id, current.previous_key_hash)) if i and h]
            if not held:  # a concurrent revocation emptied the record first
                await self._audit_revocation(op, current, revoked, why, at_least_one=False)
                return Revocation(current, revoked)
            now = self._now()
            for key_id, key_hash in held:
                if await self._keys.revoke(key_hash, at=now) and key_id not in revoked:
                    revoked.append(key_id)
            try:
                saved = await self._store.replace(_emptied(current))
            except ConcurrencyConflict:
                continue
            await self._audit_revocation(op, saved, revoked, why, at_least_one=True)
            logger.info("admin revoked keys %s of deployment %s", revoked, saved.deployment_id[:16])
            return Revocation(saved, revoked)
        raise ServiceUnavailable("The deployment is changing too fast; retry.", code="deployment_contended")

    async def _audit_revocation(
        self, op: Operator, deployment: Deployment, revoked: list[str], why: str | None, *, at_least_one: bool
    ) -> None:
        for key_id in revoked:
            await self._record(op, "revoke", deployment, key_id, why)
        if at_least_one and not revoked:
            await self._record(op, "revoke", deployment, None, why or "keys were already revoked")

    async def _record(
        self, op: Operator, action: str, deployment: Deployment, key_id: str | None, why: str | None
    ) -> None:
        await self._audit.record(self._audit_for(op, why)(action, deployment, key_id, None))

def _emptied(deployment: Deployment) -> Deployment:
    # The generation moves on at once: the record shows the revocation, and a generation a racing exchange
    # derived from the old record (and lost the write) is never handed out.
    return dataclasses.replace(
        deployment, generation=deployment.generation + 1, current_key_id=None, current_key_hash=None,
        rotates_at=None, previous_key_id=None, previous_key_hash=None, previous_valid_until=None,
        previous_retired=True,
    )
