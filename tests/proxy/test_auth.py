"""Key → principal resolution with its TTL cache, against real Azurite."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from core.errors import AuthenticationFailed, PermissionDenied
from core.tables import Tables
from keystore import keys
from keystore.models import KeyRecord, KeyStatus
from keystore.repository import KeyRepository
from keystore.teams import Team, TeamStore
from provisioning.deployment_store import DeploymentStore
from proxy.auth import PrincipalResolver

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.monotonic = 1000.0
        self.wall = NOW


class CountingRepository(KeyRepository):
    reads = 0

    async def get_by_hash(self, key_hash: str) -> KeyRecord | None:
        self.reads += 1
        return await super().get_by_hash(key_hash)


@pytest.fixture
async def world(tables: Tables) -> tuple[PrincipalResolver, CountingRepository, TeamStore, Clock]:
    clock = Clock()
    repository = CountingRepository(tables)
    teams = TeamStore(tables)
    resolver = PrincipalResolver(
        keys=repository, deployments=DeploymentStore(tables), teams=teams, ttl_seconds=30,
        negative_ttl_seconds=5, clock=lambda: clock.monotonic, now=lambda: clock.wall,
    )
    return resolver, repository, teams, clock


async def team_key(repository: KeyRepository, teams: TeamStore, team: str = "research", **record: object) -> str:
    await teams.put(Team(team=team, plan_id="internal"))
    key = keys.generate_key()
    values: dict[str, object] = {
        "key_hash": keys.hash_key(key), "key_id": keys.random_key_id(), "prefix": keys.display_prefix(key),
        "team": team, "description": "test", "status": KeyStatus.ACTIVE, "created_at": NOW,
    }
    values.update(record)
    await repository.insert(KeyRecord(**values))  # type: ignore[arg-type]
    return key


async def test_resolves_from_cache_without_storage_reads(world) -> None:
    resolver, repository, teams, _ = world
    key = await team_key(repository, teams)
    principal = await resolver.resolve(key)
    assert (principal.team, principal.plan_id, principal.owner) == ("research", "internal", "team-research")
    reads = repository.reads
    await asyncio.gather(*(resolver.resolve(key) for _ in range(100)))
    assert repository.reads == reads


async def test_concurrent_misses_share_one_read(world) -> None:
    resolver, repository, teams, _ = world
    key = await team_key(repository, teams)
    before = repository.reads
    await asyncio.gather(*(resolver.resolve(key) for _ in range(20)))
    assert repository.reads == before + 1


async def test_revocation_takes_effect_within_the_ttl(world) -> None:
    resolver, repository, teams, clock = world
    key = await team_key(repository, teams)
    await resolver.resolve(key)
    await repository.revoke(keys.hash_key(key), at=NOW)
    await resolver.resolve(key)  # still cached
    clock.monotonic += 30
    with pytest.raises(AuthenticationFailed):
        await resolver.resolve(key)


async def test_grace_expiry_is_exact_even_when_cached(world) -> None:
    resolver, repository, teams, clock = world
    key = await team_key(repository, teams)
    await repository.retire(keys.hash_key(key), until=NOW + timedelta(seconds=10))
    await resolver.resolve(key)
    clock.wall = NOW + timedelta(seconds=11)
    with pytest.raises(AuthenticationFailed):
        await resolver.resolve(key)


async def test_unknown_keys_are_negatively_cached(world) -> None:
    resolver, repository, _, clock = world
    unknown = keys.generate_key()
    for _ in range(3):
        with pytest.raises(AuthenticationFailed) as caught:
            await resolver.resolve(unknown)
    assert repository.reads == 1
    assert unknown not in caught.value.message
    clock.monotonic += 5
    with pytest.raises(AuthenticationFailed):
        await resolver.resolve(unknown)
    assert repository.reads == 2


@pytest.mark.parametrize("presented", ["", "lt-short", "sk-" + "a" * 43, "lt-" + "!" * 43])
async def test_malformed_keys_never_reach_storage(world, presented: str) -> None:
    resolver, repository, _, _ = world
    with pytest.raises(AuthenticationFailed):
        await resolver.resolve(presented)
    assert repository.reads == 0


async def test_suspended_team_is_refused(world) -> None:
    resolver, repository, teams, _ = world
    key = await team_key(repository, teams, team="paused")
    await teams.put(Team(team="paused", plan_id="internal", status="suspended"))
    with pytest.raises(PermissionDenied):
        await resolver.resolve(key)


async def test_a_revocation_by_this_instance_drops_its_cached_principal_at_once(world) -> None:
    resolver, repository, teams, _ = world
    repository.on_status_change(resolver.forget)
    key = await team_key(repository, teams)
    other = await team_key(repository, teams)
    await resolver.resolve(key)
    await resolver.resolve(other)
    await repository.revoke(keys.hash_key(key), at=NOW)
    with pytest.raises(AuthenticationFailed):
        await resolver.resolve(key)  # no clock advance: the entry was dropped, not expired
    reads = repository.reads
    await resolver.resolve(other)
    assert repository.reads == reads  # other keys stay cached
    await repository.record_last_used(keys.hash_key(other), at=NOW)
    await resolver.resolve(other)
    assert repository.reads == reads  # bookkeeping writes do not drop the entry
