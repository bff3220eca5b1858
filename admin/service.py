"""The admin domain: teams and their operator-minted keys. Every mutation is audited."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from admin import validation as v
from admin.audit_view import AuditView
from admin.auth import AdminAuthenticator, Operator
from admin.deployments import AdminDeployments
from admin.overrides import AdminOverrides
from admin.team_store import AdminTeamStore, TeamPage
from core.clock import utc_now
from core.errors import Conflict, InvalidRequest, NotFound
from core.http import optional_flag
from core.tables import Tables
from keystore.keys import display_prefix, generate_key, hash_key, random_key_id
from keystore.models import NEVER_ISSUED, NO_GRACE, SUPERSEDED, KeyRecord, KeyStatus
from keystore.repository import KeyRepository
from keystore.teams import Team
from limits.overrides import OverrideStore
from limits.plans import PlanCatalog
from provisioning.audit import AuditEvent, AuditLog
from usage.retention import RetentionPolicy

logger = logging.getLogger("liutong.admin")

ACTIVE, SUSPENDED = "active", "suspended"


@dataclass(frozen=True)
class MintedKey:
    """The only object that ever holds an operator key's plaintext: returned once, never stored."""

    key: str
    record: KeyRecord


def team_view(team: Team) -> dict[str, Any]:
    return {
        "object": "team", "team": team.team, "plan_id": team.plan_id, "status": team.status,
        "description": team.description, "created_at": v.iso(team.created_at),
    }


def key_view(record: KeyRecord) -> dict[str, Any]:
    return {
        "object": "key", "key_id": record.key_id, "prefix": record.prefix, "team": record.team,
        "description": record.description, "status": record.status.value,
        "created_at": v.iso(record.created_at), "expires_at": v.iso(record.expires_at),
        "last_used_at": v.iso(record.last_used_at), "revoked_at": v.iso(record.revoked_at),
    }


class AdminService:
    def __init__(
        self,
        *,
        auth: AdminAuthenticator,
        tables: Tables,
        keys: KeyRepository,
        audit: AuditLog,
        plans: PlanCatalog,
        rotation_grace_hours: float = 24,
        max_body_bytes: int = 16 * 1024,
        now: Callable[[], datetime] = utc_now,
        deployments: AdminDeployments | None = None,
        usage_retention: RetentionPolicy | None = None,
    ) -> None:
        self.auth = auth
        self.tables = tables
        self.teams = AdminTeamStore(tables)
        self.keys = keys
        self.audit = audit
        self.plans = plans
        self.rotation_grace_hours = rotation_grace_hours
        self.usage_retention = usage_retention or RetentionPolicy()
        self.max_body_bytes = max_body_bytes
        self.now = now
        self.deployments = deployments
        self.audit_view = AuditView(tables)
        self.overrides = AdminOverrides(store=OverrideStore(tables), audit=audit, plans=plans, now=now)

    async def _audit(
        self, op: Operator, action: str, team: Team, key_id: str | None = None, *, reason: str | None = None
    ) -> None:
        await self.audit.record(AuditEvent(
            action=action, reason=reason, actor_oid=op.oid, actor_tid=op.tid, plan_id=team.plan_id,
            resource_id=f"team/{team.team}", key_id=key_id, at=self.now(),
        ))

    # Teams

    async def create_team(self, op: Operator, body: dict[str, Any]) -> Team:
        v.check_fields(body, {"team", "plan_id", "description"})
        name = v.team_name(body.get("team"))
        plan_id = self._known_plan(v.required_str(body, "plan_id"))
        description = v.description(body) or ""
        team = Team(team=name, plan_id=plan_id, status=ACTIVE, description=description, created_at=self.now())
        await self.teams.create(team)
        await self._audit(op, "admin.team.create", team)
        return team

    def _known_plan(self, plan_id: str) -> str:
        if self.plans.get(plan_id) is None:
            raise InvalidRequest("Unknown plan.", param="plan_id", code="unknown_plan")
        return plan_id

    async def list_teams(self, *, size: int, token: str | None) -> TeamPage:
        return await self.teams.page(size=size, token=token)

    async def get_team(self, name: str) -> Team:
        team = await self.teams.get(v.team_name(name))
        if team is None:
            raise NotFound("No such team.", param="team")
        return team

    async def update_team(self, op: Operator, name: str, body: dict[str, Any]) -> Team:
        v.check_fields(body, {"description", "plan_id"})
        if not body:
            raise InvalidRequest("Nothing to update: give description and/or plan_id.", code="empty_update")
        description = v.description(body, required=True) if "description" in body else None
        plan_id = self._known_plan(v.required_str(body, "plan_id")) if "plan_id" in body else None

        def change(team: Team) -> Team:
            return dataclasses.replace(
                team, description=team.description if description is None else description,
                plan_id=plan_id or team.plan_id,
            )

        updated = await self.teams.update(v.team_name(name), change)
        if updated is None:
            raise NotFound("No such team.", param="team")
        await self._audit(op, "admin.team.update", updated)
        return updated

    async def set_status(self, op: Operator, name: str, status: str) -> Team:
        def change(team: Team) -> Team | None:
            return None if team.status == status else dataclasses.replace(team, status=status)

        updated = await self.teams.update(v.team_name(name), change)
        if updated is None:
            raise NotFound("No such team.", param="team")
        action = "admin.team.suspend" if status == SUSPENDED else "admin.team.resume"
        await self._audit(op, action, updated)
        return updated

    # Keys

    async def _mint(
        self, team: Team, description: str, expires_at: datetime | None, *, rotated_from: str | None = None
    ) -> MintedKey:
        key = generate_key()
        record = KeyRecord(
            key_hash=hash_key(key), key_id=random_key_id(), prefix=display_prefix(key), team=team.team,
            description=description, status=KeyStatus.ACTIVE, created_at=self.now(), expires_at=expires_at,
            rotated_from=rotated_from,
        )
        await self.keys.insert(record)
        return MintedKey(key=key, record=record)

    async def _audit_minted(self, op: Operator, action: str, team: Team, minted: MintedKey) -> None:
        """No key is handed out unaudited: if the audit write fails, the new key is revoked and the error raised.

        Its plaintext is then never shown, so even a key the revocation could not reach is unusable.
        """
        try:
            await self._audit(op, action, team, minted.record.key_id)
        except Exception:
            try:
                await self.keys.revoke(minted.record.key_hash, at=self.now())
            except Exception as error:  # noqa: BLE001 - the audit failure is the error to report
                logger.warning("could not revoke unaudited key %s (%s)", minted.record.key_id, type(error).__name__)
            raise

    async def mint_key(self, op: Operator, name: str, body: dict[str, Any]) -> MintedKey:
        v.check_fields(body, {"description", "expires_at"})
        description = v.description(body) or ""
        expires_at = v.optional_datetime(body, "expires_at", after=self.now())
        team = await self.get_team(name)
        if team.suspended:
            raise Conflict("The team is suspended; resume it before minting keys.", code="team_suspended")
        minted = await self._mint(team, description, expires_at)
        await self._audit_minted(op, "admin.key.mint", team, minted)
        logger.info("admin minted key %s for team %s", minted.record.key_id, team.team)
        return minted

    async def list_keys(self, name: str) -> list[KeyRecord]:
        team = await self.get_team(name)
        return await self.keys.list_for_owner(team=team.team)

    async def _find_key(self, team: Team, key_id: str) -> KeyRecord:
        v.key_id(key_id)
        for record in await self.keys.list_for_owner(team=team.team):
            if record.key_id == key_id:
                return record
        raise NotFound("No such key for this team.", param="key_id")

    async def revoke_team_key(self, op: Operator, name: str, key_id: str) -> KeyRecord:
        team = await self.get_team(name)
        record = await self._find_key(team, key_id)
        if await self.keys.revoke(record.key_hash, at=self.now()):
            await self._audit(op, "admin.key.revoke", team, record.key_id)
        found = await self.keys.get_by_hash(record.key_hash)
        return found or record

    async def rotate_team_key(
        self, op: Operator, name: str, key_id: str, body: dict[str, Any]
    ) -> tuple[MintedKey, KeyRecord]:
        """A successor for an active key. The old key keeps a grace period (or is revoked with revoke_previous);
        the key *it* replaced is revoked, so a rotation chain never holds more than two valid keys."""
        v.check_fields(body, {"grace_hours", "description", "expires_at", "revoke_previous"})
        grace = v.optional_number(body, "grace_hours", low=0, high=24 * 30)
        revoke_previous = optional_flag(body, "revoke_previous")
        if revoke_previous and grace:
            raise InvalidRequest("grace_hours cannot be combined with revoke_previous.", param="grace_hours")
        description = v.description(body)
        expires_at = v.optional_datetime(body, "expires_at", after=self.now())
        team = await self.get_team(name)
        owned = {r.key_id: r for r in await self.keys.list_for_owner(team=team.team)}
        old = owned.get(v.key_id(key_id))
        if old is None:
            raise NotFound("No such key for this team.", param="key_id")
        self._check_rotatable(team, old)
        minted = await self._mint(team, old.description if description is None else description, expires_at,
                                  rotated_from=old.key_id)
        # Audited before the old key changes: a failed audit leaves the old key active, so a retry works.
        await self._audit_minted(op, "admin.key.rotate", team, minted)
        hours = self.rotation_grace_hours if grace is None else grace
        superseded = await self.keys.supersede(
            old.key_hash, at=self.now(), grace=None if revoke_previous else timedelta(hours=hours)
        )
        if superseded is None:
            await self._revoke_audited(op, team, minted.record, NEVER_ISSUED)
            raise Conflict("The key was rotated or revoked meanwhile; no new key was issued.",
                           code="key_not_active", param="key_id")
        if revoke_previous:
            await self._audit(op, "admin.key.revoke", team, old.key_id, reason=NO_GRACE)
        else:
            await self._audit(op, "admin.key.retire", team, old.key_id)
        predecessor = owned.get(old.rotated_from or "")
        if predecessor is not None:
            await self._revoke_audited(op, team, predecessor, SUPERSEDED)
        return minted, superseded

    def _check_rotatable(self, team: Team, old: KeyRecord) -> None:
        if old.status is not KeyStatus.ACTIVE or not old.is_usable(self.now()):
            raise Conflict("Only an active key can be rotated.", code="key_not_active", param="key_id")
        if team.suspended:
            raise Conflict("The team is suspended; resume it before rotating keys.", code="team_suspended")

    async def _revoke_audited(self, op: Operator, team: Team, record: KeyRecord, reason: str) -> None:
        if await self.keys.revoke(record.key_hash, at=self.now()):
            await self._audit(op, "admin.key.revoke", team, record.key_id, reason=reason)
