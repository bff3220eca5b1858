"""Bring your own key (BYOK): a team's own provider credential serves its calls to one upstream alias.

The plan decides (limits.plans.Plan.byok): "forbid" ignores registrations, "allow" uses one when the team
registered it and Liutong's credential otherwise, "require" refuses calls to an alias the team has no credential
for (403 byok_required). A BYOK call is recorded with byok=true and costs the plan's `byok_fee_plan_tokens`
(0 by default) instead of its tokens: nothing else is drawn from quota or prepaid balance, or metered.

Which aliases a team has a credential for is read from the `byok` table (proxy.byok_store) once per team per
`ttl` seconds (the principal cache TTL): a registration or removal takes effect within it on other instances,
at once on the instance that made it. The credential itself is read from Key Vault once per registration;
when the upstream refuses it, both are read again on the next call.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from core.errors import LiutongError, PermissionDenied
from keystore.principal import Principal
from limits.plans import Plan
from proxy.byok_store import ByokEntry
from proxy.routing import Route
from proxy.upstream_auth import ApiKeyAuth, SecretSource
from proxy.upstreams import OpenAIUpstream, UpstreamsConfig

logger = logging.getLogger("liutong.proxy")

MAX_TEAMS = 50_000


class TeamEntries(Protocol):
    async def for_team(self, team: str) -> dict[str, ByokEntry]: ...


@dataclass(frozen=True)
class _Loaded:
    at: float
    secret_names: dict[str, str]  # alias → secret name


def byok_capable(config: UpstreamsConfig, alias: str) -> bool:
    """Only OpenAI-compatible upstreams take an API key; Azure OpenAI deployments take the service's Entra token."""
    return isinstance(config.models.get(alias), OpenAIUpstream)


def admission_plan(plan: Plan) -> Plan:
    """The plan a BYOK call is admitted under: its RPM/TPM, and a reservation of the fee alone."""
    if plan.byok_fee_plan_tokens > 0:
        return plan
    # No fee: nothing to reserve or count, so an empty balance or a spent month does not refuse the call.
    return plan.model_copy(update={"mode": "quota", "monthly_included_tokens": None})


def required_error() -> PermissionDenied:
    return PermissionDenied(
        "Your plan serves this model only with your team's own provider credential (BYOK), and none is registered "
        "for it.",
        code="byok_required", param="model",
    )


def refused_error() -> PermissionDenied:
    # Not a 401: the caller's Liutong key is fine; it is the team's registered provider credential that failed.
    return PermissionDenied(
        "The upstream model provider refused your team's own credential (BYOK) for this model; "
        "ask your operator to register a working one.",
        code="byok_credential_refused",
    )


class ByokCredentials:
    def __init__(
        self, *, entries: TeamEntries, secrets: SecretSource, upstreams: UpstreamsConfig, ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries = entries
        self._upstreams = upstreams
        self._secrets = secrets
        self._ttl = ttl_seconds
        self._clock = clock
        self._teams: OrderedDict[str, _Loaded] = OrderedDict()
        self._auths: dict[str, ApiKeyAuth] = {}  # by secret name

    async def for_call(self, principal: Principal, plan: Plan, alias: str) -> ApiKeyAuth | None:
        """The team's own credential for `alias` when the plan lets it serve the call."""
        if plan.byok == "forbid":
            return None
        name = None
        if byok_capable(self._upstreams, alias):  # never an API key to an Entra-only upstream
            name = (await self._secret_names(principal.team)).get(alias)
        if name is None:
            if plan.byok == "require":
                raise required_error()
            return None
        auth = self._auths.get(name)
        if auth is None:
            auth = self._auths[name] = ApiKeyAuth(self._secrets, name)
        return auth

    def forget(self, team: str) -> None:
        """A registration of `team` changed here: the next call reads it again."""
        loaded = self._teams.pop(team, None)
        if loaded is not None:
            for name in loaded.secret_names.values():
                self._auths.pop(name, None)

    def refused(self, team: str) -> None:
        """The upstream refused the team's credential: re-read the registration and the secret next time."""
        self.forget(team)

    async def _secret_names(self, team: str) -> dict[str, str]:
        loaded = self._teams.get(team)
        if loaded is not None and self._clock() - loaded.at < self._ttl:
            return loaded.secret_names
        try:
            entries = await self._entries.for_team(team)
        except LiutongError:
            if loaded is None:
                raise
            # Storage is down: the registrations read last are still the best answer.
            logger.warning("BYOK registrations could not be re-read; using those read before")
            return loaded.secret_names
        names = {alias: entry.secret_name for alias, entry in entries.items()}
        if loaded is not None:
            for gone in set(loaded.secret_names.values()) - set(names.values()):
                self._auths.pop(gone, None)
        self._teams[team] = _Loaded(self._clock(), names)
        self._teams.move_to_end(team)
        while len(self._teams) > MAX_TEAMS:
            _, evicted = self._teams.popitem(last=False)
            for name in evicted.secret_names.values():
                self._auths.pop(name, None)
        return names



async def own_credential(
    byok: ByokCredentials | None, principal: Principal, plan: Plan, alias: str
) -> ApiKeyAuth | None:
    """The team's own credential for the call, None for Liutong's; raises byok_required when the plan needs one."""
    if byok is None:
        if plan.byok == "require":
            raise required_error()
        return None
    return await byok.for_call(principal, plan, alias)


async def byok_credential(byok: ByokCredentials | None, principal: Principal, route: Route) -> ApiKeyAuth:
    """The credential of a call admitted as BYOK (cached since admission; gone only if removed in between)."""
    auth = await own_credential(byok, principal, route.plan, route.alias)
    if auth is None:
        raise required_error()
    return auth
