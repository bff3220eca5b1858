"""Liutong key → principal, from an in-process cache so the hot path does no storage round trip.

A cached entry lives `ttl` seconds: revocation, suspension, a limit override or a deployment's deletion takes effect
within that time (default 30 s). Unknown keys are remembered for `negative_ttl` seconds (default 5 s)
so a flood of wrong keys does not become a flood of point reads. Grace-period expiry is checked on
every call against the cached record, so it is exact.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from core.clock import utc_now
from core.errors import AuthenticationFailed, PermissionDenied
from keystore.keys import hash_key, is_well_formed
from keystore.last_used import LastUsedRecorder
from keystore.models import KeyRecord
from keystore.principal import Principal
from keystore.repository import KeyRepository
from keystore.teams import TeamStore
from limits.overrides import OverrideStore
from provisioning.deployment_store import DeploymentStore
from provisioning.deployments import SUSPENDED_MESSAGE

MAX_ENTRIES = 50_000


@dataclass(frozen=True)
class _Entry:
    loaded_at: float
    record: KeyRecord | None
    principal: Principal | None
    refusal: PermissionDenied | None


class PrincipalResolver:
    def __init__(
        self,
        *,
        keys: KeyRepository,
        deployments: DeploymentStore,
        teams: TeamStore,
        ttl_seconds: float,
        negative_ttl_seconds: float,
        last_used: LastUsedRecorder | None = None,
        overrides: OverrideStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._keys = keys
        self._deployments = deployments
        self._teams = teams
        self._ttl = ttl_seconds
        self._negative_ttl = negative_ttl_seconds
        self._last_used = last_used
        self._overrides = overrides
        self._clock = clock
        self._now = now
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._loading: dict[str, asyncio.Future[_Entry]] = {}

    async def resolve(self, key: str) -> Principal:
        if not is_well_formed(key):
            raise _invalid_key()
        key_hash = hash_key(key)
        entry = self._cached(key_hash) or await self._load_once(key_hash)
        now = self._now()
        if entry.record is None or not entry.record.is_usable(now):
            raise _invalid_key()
        if entry.refusal is not None:
            raise PermissionDenied(entry.refusal.message, code=entry.refusal.code)
        assert entry.principal is not None
        if self._last_used is not None:
            self._last_used.touch(key_hash, now)
        return entry.principal

    def forget(self, key_hash: str) -> None:
        self._cache.pop(key_hash, None)

    def _cached(self, key_hash: str) -> _Entry | None:
        entry = self._cache.get(key_hash)
        if entry is None:
            return None
        ttl = self._ttl if entry.record is not None else self._negative_ttl
        if self._clock() - entry.loaded_at >= ttl:
            self._cache.pop(key_hash, None)
            return None
        return entry

    async def _load_once(self, key_hash: str) -> _Entry:
        """Concurrent misses for one key share a single storage read."""
        pending = self._loading.get(key_hash)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[_Entry] = asyncio.get_running_loop().create_future()
        self._loading[key_hash] = future
        try:
            entry = await self._load(key_hash)
            future.set_result(entry)
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved here, so an unawaited failure is not reported twice
            raise
        finally:
            del self._loading[key_hash]
        self._remember(key_hash, entry)
        return entry

    def _remember(self, key_hash: str, entry: _Entry) -> None:
        self._cache[key_hash] = entry
        self._cache.move_to_end(key_hash)
        while len(self._cache) > MAX_ENTRIES:
            self._cache.popitem(last=False)

    async def _load(self, key_hash: str) -> _Entry:
        loaded_at = self._clock()
        record = await self._keys.get_by_hash(key_hash)
        if record is None:
            return _Entry(loaded_at, None, None, None)
        principal, refusal = await self._principal_for(record)
        if principal is not None and self._overrides is not None:
            limits = await self._overrides.limits(principal.owner)
            principal = dataclasses.replace(principal, limits=limits) if limits is not None else principal
        return _Entry(loaded_at, record, principal, refusal)

    async def _principal_for(self, record: KeyRecord) -> tuple[Principal | None, PermissionDenied | None]:
        if record.deployment_id is not None:
            deployment = await self._deployments.get(record.deployment_id)
            if deployment is None or deployment.refuses_keys or deployment.plan_id is None:
                return None, _inactive("The key's marketplace deployment is not active.")
            if deployment.suspended:
                return None, PermissionDenied(SUSPENDED_MESSAGE, code="account_suspended")
            return _principal(
                record, deployment.plan_id, deployment_id=deployment.deployment_id,
                application_id=deployment.application_id, resource_usage_id=deployment.resource_usage_id,
            ), None
        team = await self._teams.get(record.team)
        if team is None or not team.plan_id:
            return None, _inactive("The key's team has no plan.")
        if team.suspended:
            return None, _inactive("The key's team is suspended.")
        return _principal(record, team.plan_id), None


def _principal(
    record: KeyRecord, plan_id: str, *, deployment_id: str | None = None, application_id: str | None = None,
    resource_usage_id: str | None = None,
) -> Principal:
    return Principal(
        key_id=record.key_id, key_prefix=record.prefix, key_hash=record.key_hash, team=record.team, plan_id=plan_id,
        deployment_id=deployment_id, application_id=application_id, resource_usage_id=resource_usage_id,
    )


def _inactive(message: str) -> PermissionDenied:
    return PermissionDenied(message, code="key_inactive")


def _invalid_key() -> AuthenticationFailed:
    # Like OpenAI: 401 invalid_api_key; the presented key is never echoed.
    return AuthenticationFailed("Incorrect API key provided.", code="invalid_api_key")
