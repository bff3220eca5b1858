import asyncio
import dataclasses
from collections.abc import Callable
from datetime import timedelta

import pytest
from azure.data.tables.aio import TableServiceClient

from core.errors import Conflict, InvalidRequest, StorageUnavailable
from core.settings import Settings
from core.tables import Tables
from keystore.keys import derived_key_id, hash_key
from keystore.models import KeyStatus
from keystore.repository import INDEX_TABLE, KEYS_TABLE, KeyRepository
from localdev import azurite
from tests.keystore.conftest import DEPLOYMENT, NOW, make_record


async def test_insert_then_point_read(repository: KeyRepository, tables: Tables) -> None:
    key, record = make_record(deployment_id=DEPLOYMENT, application_id="/subs/x/app", generation=2,
                              master_version="s0123", expires_at=NOW + timedelta(days=30))
    await repository.insert(record)
    assert await repository.get_by_hash(record.key_hash) == record
    assert await repository.find(key) == record
    entity = await tables.table(KEYS_TABLE).get_entity(record.key_hash[:2], record.key_hash)
    assert entity["RowKey"] == record.key_hash


async def test_find_unknown_or_malformed_is_none(repository: KeyRepository) -> None:
    key, _ = make_record()
    assert await repository.find(key) is None
    assert await repository.find("lt-short") is None
    assert await repository.find("") is None
    assert await repository.get_by_hash("zz") is None


async def test_insert_is_idempotent(repository: KeyRepository) -> None:
    _, record = make_record(deployment_id=DEPLOYMENT)
    await repository.insert(record)
    await repository.insert(record)
    assert await repository.list_for_owner(deployment_id=DEPLOYMENT) == [record]


async def test_insert_conflicts(repository: KeyRepository) -> None:
    _, record = make_record()
    await repository.insert(record)
    with pytest.raises(Conflict):
        await repository.insert(dataclasses.replace(record, key_id="key-other"))
    _, other = make_record(key_id=record.key_id)  # another key under a taken key id
    with pytest.raises(Conflict):
        await repository.insert(other)
    assert await repository.get_by_hash(other.key_hash) is None
    assert await repository.list_for_owner(team="team-a") == [record]


async def test_insert_refuses_unsafe_owner(repository: KeyRepository) -> None:
    _, record = make_record(team="a/b")
    with pytest.raises(InvalidRequest):
        await repository.insert(record)


async def test_list_by_deployment_and_team(repository: KeyRepository, tables: Tables) -> None:
    _, dep1 = make_record(deployment_id=DEPLOYMENT, team="market", created_at=NOW)
    _, dep2 = make_record(deployment_id=DEPLOYMENT, team="market", created_at=NOW + timedelta(days=1),
                          key_id=derived_key_id(deployment_id=DEPLOYMENT, generation=1, master_version="s1"))
    _, team_only = make_record(team="ops")
    _, other_dep = make_record(deployment_id="cd" * 32, team="market")
    for record in (dep2, dep1, team_only, other_dep):
        await repository.insert(record)
    # An orphan index row (key row never written) is skipped.
    await tables.table(INDEX_TABLE).create_entity(
        {"PartitionKey": f"dep-{DEPLOYMENT}", "RowKey": "key-orphan", "key_hash": "0" * 64}
    )
    assert await repository.list_for_owner(deployment_id=DEPLOYMENT) == [dep1, dep2]
    assert await repository.list_for_owner(team="ops") == [team_only]
    assert {r.key_id for r in await repository.list_for_owner(team="market")} == {
        dep1.key_id, dep2.key_id, other_dep.key_id
    }
    assert await repository.list_for_owner(team="nobody") == []
    with pytest.raises(ValueError):
        await repository.list_for_owner()
    with pytest.raises(ValueError):
        await repository.list_for_owner(deployment_id=DEPLOYMENT, team="ops")


async def test_retire_sets_grace_and_never_extends(repository: KeyRepository) -> None:
    _, record = make_record()
    await repository.insert(record)
    until = NOW + timedelta(hours=24)
    retired = await repository.retire(record.key_hash, until=until)
    assert retired is not None and retired.status is KeyStatus.ROTATING_OUT and retired.expires_at == until
    later = await repository.retire(record.key_hash, until=until + timedelta(days=1))
    assert later is not None and later.expires_at == until
    sooner = await repository.retire(record.key_hash, until=NOW + timedelta(hours=1))
    assert sooner is not None and sooner.expires_at == NOW + timedelta(hours=1)
    assert await repository.get_by_hash(record.key_hash) == sooner
    assert await repository.retire("0" * 64, until=until) is None


async def test_retire_keeps_an_earlier_expiry_of_an_active_key(repository: KeyRepository) -> None:
    _, record = make_record(expires_at=NOW + timedelta(hours=1))
    await repository.insert(record)
    retired = await repository.retire(record.key_hash, until=NOW + timedelta(days=1))
    assert retired is not None and retired.expires_at == NOW + timedelta(hours=1)


async def test_revocation_is_one_way(repository: KeyRepository) -> None:
    _, record = make_record()
    await repository.insert(record)
    assert await repository.revoke(record.key_hash, at=NOW) is True
    assert await repository.revoke(record.key_hash, at=NOW + timedelta(hours=1)) is False
    after_retire = await repository.retire(record.key_hash, until=NOW + timedelta(days=1))
    assert after_retire is not None and after_retire.status is KeyStatus.REVOKED
    await repository.insert(record)  # re-inserting the active record must not revive it
    stored = await repository.get_by_hash(record.key_hash)
    assert stored is not None
    assert stored.status is KeyStatus.REVOKED and stored.revoked_at == NOW
    assert not stored.is_usable(NOW)
    assert await repository.revoke("0" * 64, at=NOW) is False


async def test_revoke_all(repository: KeyRepository) -> None:
    records = [make_record(deployment_id=DEPLOYMENT)[1] for _ in range(3)]
    _, other = make_record(deployment_id="cd" * 32)
    for record in (*records, other):
        await repository.insert(record)
    await repository.revoke(records[0].key_hash, at=NOW)
    revoked = await repository.revoke_all(deployment_id=DEPLOYMENT, at=NOW)
    assert sorted(revoked) == sorted(r.key_id for r in records[1:])
    assert await repository.revoke_all(deployment_id=DEPLOYMENT, at=NOW) == []
    listed = await repository.list_for_owner(deployment_id=DEPLOYMENT)
    assert all(r.status is KeyStatus.REVOKED for r in listed)
    still = await repository.get_by_hash(other.key_hash)
    assert still is not None and still.status is KeyStatus.ACTIVE


async def test_concurrent_revoke_and_retire_end_consistent(repository: KeyRepository) -> None:
    _, record = make_record()
    await repository.insert(record)
    untils = [NOW + timedelta(hours=h) for h in (5, 3, 9, 4)]
    results = await asyncio.gather(
        *(repository.retire(record.key_hash, until=u) for u in untils),
        *(repository.revoke(record.key_hash, at=NOW + timedelta(minutes=m)) for m in range(3)),
        *(repository.record_last_used(record.key_hash, at=NOW + timedelta(seconds=s)) for s in range(3)),
    )
    revoke_results = results[4:7]
    assert sum(1 for r in revoke_results if r is True) == 1
    final = await repository.get_by_hash(record.key_hash)
    assert final is not None
    assert final.status is KeyStatus.REVOKED and final.revoked_at is not None
    assert final.last_used_at == NOW + timedelta(seconds=2)
    if final.expires_at is not None:  # retires that landed before the revoke never extended
        assert final.expires_at >= min(untils)


async def test_concurrent_retires_keep_the_earliest_expiry(repository: KeyRepository) -> None:
    _, record = make_record()
    await repository.insert(record)
    untils = [NOW + timedelta(hours=h) for h in (7, 2, 9, 5, 3)]
    await asyncio.gather(*(repository.retire(record.key_hash, until=u) for u in untils))
    final = await repository.get_by_hash(record.key_hash)
    assert final is not None and final.status is KeyStatus.ROTATING_OUT and final.expires_at == min(untils)


async def test_last_used_never_moves_backwards(repository: KeyRepository) -> None:
    _, record = make_record()
    await repository.insert(record)
    assert await repository.record_last_used(record.key_hash, at=NOW + timedelta(minutes=5))
    assert not await repository.record_last_used(record.key_hash, at=NOW + timedelta(minutes=1))
    stored = await repository.get_by_hash(record.key_hash)
    assert stored is not None and stored.last_used_at == NOW + timedelta(minutes=5)


async def test_plaintext_key_is_never_stored(repository: KeyRepository, tables: Tables) -> None:
    keys = []
    for i in range(4):
        key, record = make_record(deployment_id=DEPLOYMENT if i % 2 else None)
        keys.append(key)
        await repository.insert(record)
        await repository.record_last_used(record.key_hash, at=NOW)
        await repository.retire(record.key_hash, until=NOW + timedelta(hours=1))
    await repository.revoke_all(team="team-a", at=NOW)
    dumped = []
    for logical in (KEYS_TABLE, INDEX_TABLE):
        async for entity in tables.table(logical).list_entities():
            dumped.append(repr(dict(entity)) + repr(entity.metadata))
    assert len(dumped) == 4 + 4 + 2
    text = "\n".join(dumped)
    for key in keys:
        assert key not in text and key[3:] not in text and key[9:20] not in text
        assert hash_key(key) in text


async def test_storage_down_is_storage_unavailable(make_settings: Callable[..., Settings]) -> None:
    closed = azurite.connection_string("127.0.0.1", azurite.free_port())
    key, record = make_record(deployment_id=DEPLOYMENT)
    tables = Tables(make_settings(storage_connection_string=closed))
    try:
        with pytest.raises(StorageUnavailable) as raised:  # default retries: a few seconds
            await KeyRepository(tables).find(key)
        assert key not in str(raised.value)
    finally:
        await tables.close()
    # The rest without the SDK's connect retries, to keep the test fast.
    tables = Tables(make_settings(storage_connection_string=closed))
    await tables.service.close()
    tables.service = TableServiceClient.from_connection_string(closed, retry_total=0)
    repository = KeyRepository(tables)
    try:
        with pytest.raises(StorageUnavailable):
            await repository.insert(record)
        with pytest.raises(StorageUnavailable):
            await repository.list_for_owner(deployment_id=DEPLOYMENT)
        with pytest.raises(StorageUnavailable):
            await repository.revoke(record.key_hash, at=NOW)
    finally:
        await tables.close()
