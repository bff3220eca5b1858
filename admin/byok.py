"""Operators register, list and remove a team's own provider credentials (BYOK, proxy.byok).

A credential is tried before anything is stored: a cheap authenticated call (GET {base_url}/models) that the
provider answers 401/403 refuses it with 400 `param: api_key`. It is then stored in Key Vault under a new secret
name, its metadata (last 4 characters, who, when) in the `byok` table; a replaced one's secret is deleted.
Responses, audit rows and logs carry the alias and the last 4 characters at most, never the credential.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

from admin import validation as v
from admin.auth import Operator
from core.errors import InvalidRequest, LiutongError, NotFound, ServiceUnavailable, UpstreamUnavailable
from keystore.teams import Team
from limits.plans import Plan, PlanCatalog
from provisioning.audit import AuditEvent, AuditLog
from proxy.byok_store import ByokEntry, ByokStore, last4, new_secret_name
from proxy.byok_vault import ByokVault
from proxy.upstreams import OpenAIUpstream, UpstreamsConfig

logger = logging.getLogger("liutong.admin")

MIN_KEY_CHARS, MAX_KEY_CHARS = 8, 1024
_MAX_ALIAS_CHARS = 200


def byok_view(entry: ByokEntry, plan: Plan | None) -> dict[str, Any]:
    return {
        "object": "byok_credential", "team": entry.team, "alias": entry.alias, "last4": entry.last4,
        "created_at": v.iso(entry.created_at), "created_by": entry.created_by,
        # Whether calls to the alias fall back to Liutong's own credential once this one is removed.
        "fallback": plan is not None and plan.byok == "allow",
    }


class AdminByok:
    def __init__(
        self, *, store: ByokStore, vault: ByokVault | None, upstreams: UpstreamsConfig, http: httpx.AsyncClient,
        audit: AuditLog, plans: PlanCatalog, now: Callable[[], datetime],
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self._store = store
        self._vault = vault
        self._upstreams = upstreams
        self._http = http
        self._audit = audit
        self._plans = plans
        self._now = now
        self._on_change = on_change

    async def register(self, op: Operator, team: Team, alias: str, body: dict[str, Any]) -> dict[str, Any]:
        v.check_fields(body, {"api_key"})
        plan = self._plans.get(team.plan_id)
        if plan is None or plan.byok == "forbid":
            raise InvalidRequest("The team's plan does not allow its own provider credentials (BYOK).",
                                 param="team", code="byok_not_allowed")
        upstream = self._upstream(plan, alias)
        credential = _credential(body.get("api_key"))
        vault = self._vault_or_unavailable()
        await self._try(upstream, credential)
        previous = await self._store.get(team.team, alias)
        entry = ByokEntry(team.team, alias, new_secret_name(team.team, alias), last4(credential), self._now(), op.oid)
        await vault.set_secret(entry.secret_name, credential, tags={"liutong-team": team.team})
        try:
            await self._store.put(entry)
        except BaseException:
            await self._forget_secret(entry.secret_name)
            raise
        if previous is not None:
            await self._forget_secret(previous.secret_name)
        await self._record(op, "admin.team.byok.set", team, alias)
        self._changed(team.team)
        return byok_view(entry, plan)

    async def list(self, team: Team) -> list[dict[str, Any]]:
        plan = self._plans.get(team.plan_id)
        entries = await self._store.for_team(team.team)
        return [byok_view(entry, plan) for _, entry in sorted(entries.items())]

    async def remove(self, op: Operator, team: Team, alias: str) -> dict[str, Any]:
        entry = await self._store.get(team.team, alias)
        if entry is None:
            raise NotFound("The team has no own credential for this model.", param="alias")
        vault = self._vault_or_unavailable()
        await self._store.delete(team.team, alias)
        self._changed(team.team)
        await self._record(op, "admin.team.byok.remove", team, alias)
        try:
            await vault.delete_secret(entry.secret_name)
        except LiutongError:
            # Unreachable from now on (its row is gone); the secret is left for an operator to delete.
            logger.warning("BYOK secret %s was not deleted from Key Vault", entry.secret_name)
        return {**byok_view(entry, self._plans.get(team.plan_id)), "deleted": True}

    def _upstream(self, plan: Plan, alias: str) -> OpenAIUpstream:
        if len(alias) > _MAX_ALIAS_CHARS or alias not in self._upstreams.models:
            raise NotFound("No such model.", param="alias", code="model_not_found")
        if not plan.allows(alias):
            raise InvalidRequest("The team's plan does not include this model.", param="alias",
                                 code="model_not_in_plan")
        upstream = self._upstreams.models[alias]
        if not isinstance(upstream, OpenAIUpstream):
            raise InvalidRequest(
                "This model is an Azure OpenAI deployment, which Liutong calls with its own Entra identity: "
                "it takes no API key, so it cannot use the team's own credential.",
                param="alias", code="byok_unsupported_upstream",
            )
        return upstream

    async def _try(self, upstream: OpenAIUpstream, credential: str) -> None:
        """One cheap authenticated call; only the provider's refusal says the credential is bad."""
        url = str(upstream.base_url).rstrip("/") + "/models"
        try:
            response = await self._http.get(url, headers={"authorization": f"Bearer {credential}"})
        except httpx.HTTPError as error:
            raise UpstreamUnavailable(
                f"Could not reach the provider to check the credential ({type(error).__name__}).", code="bad_gateway"
            ) from None
        if response.status_code in (401, 403):
            raise InvalidRequest(
                f"The provider refused this credential (HTTP {response.status_code}).",
                param="api_key", code="invalid_byok_credential",
            )
        if response.status_code >= 500:
            raise UpstreamUnavailable(
                f"The provider could not check the credential (HTTP {response.status_code}).", code="bad_gateway"
            )

    def _vault_or_unavailable(self) -> ByokVault:
        if self._vault is None:
            raise ServiceUnavailable("No Key Vault is configured for BYOK credentials.", code="byok_not_configured")
        return self._vault

    async def _forget_secret(self, name: str) -> None:
        try:
            await self._vault_or_unavailable().delete_secret(name)
        except LiutongError:
            logger.warning("BYOK secret %s was not deleted from Key Vault", name)

    def _changed(self, team: str) -> None:
        if self._on_change is not None:
            self._on_change(team)

    async def _record(self, op: Operator, action: str, team: Team, alias: str) -> None:
        await self._audit.record(AuditEvent(
            # The team's resource, so its history shows these; which model is the one thing the reason says.
            action=action, reason=f"model {alias}", actor_oid=op.oid, actor_tid=op.tid, plan_id=team.plan_id,
            resource_id=f"team/{team.team}", at=self._now(),
        ))


def _credential(value: Any) -> str:
    if (
        not isinstance(value, str) or not MIN_KEY_CHARS <= len(value) <= MAX_KEY_CHARS
        or not value.isascii() or not value.isprintable() or any(c.isspace() for c in value)
    ):
        # The value is never echoed, not even in part.
        raise InvalidRequest(
            f"'api_key' must be the provider's key: {MIN_KEY_CHARS}-{MAX_KEY_CHARS} printable ASCII characters "
            "without spaces.", param="api_key", code="invalid_byok_credential",
        )
    return value
