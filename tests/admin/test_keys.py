"""Keys of a team: mint (shown once), list (never the key), revoke (one-way), rotate with grace."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import httpx
import pytest

from core.tables import Tables
from keystore.keys import hash_key, is_well_formed
from keystore.models import KeyStatus
from keystore.repository import KeyRepository
from provisioning.audit import AuditLog
from tests.admin.conftest import Clock, auth_header, create_team, mint, snapshot

H = auth_header()


async def test_mint_then_find_and_nowhere_stored(
    client: httpx.AsyncClient, tables: Tables, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await create_team(client)
    expires = (clock.now + timedelta(days=30)).isoformat()
    response = await client.post("/api/admin/teams/team-a/keys", json={"description": "ci", "expires_at": expires},
                                 headers=H)
    assert response.status_code == 201 and response.headers["cache-control"] == "no-store"
    minted = response.json()
    key = minted["key"]
    assert is_well_formed(key) and minted["prefix"] == key[:9] and minted["status"] == "active"
    assert minted["expires_at"] == expires and minted["description"] == "ci"
    record = await KeyRepository(tables).find(key)
    assert record is not None and record.key_id == minted["key_id"] and record.team == "team-a"
    assert record.is_usable(clock.now)
    rows = json.dumps(await snapshot(tables), default=str)
    assert key not in rows and key[3:] not in rows and hash_key(key) in rows
    assert key not in caplog.text and key[3:] not in caplog.text
    audit = await AuditLog(tables).list_day(clock.now)
    mint_events = [e for e in audit if e["action"] == "admin.key.mint"]
    assert len(mint_events) == 1 and mint_events[0]["key_id"] == minted["key_id"]


async def test_list_never_shows_key(client: httpx.AsyncClient) -> None:
    await create_team(client)
    keys = [await mint(client, description=f"k{i}") for i in range(3)]
    await create_team(client, "team-b")
    await mint(client, "team-b")
    listing = await client.get("/api/admin/teams/team-a/keys", headers=H)
    data = listing.json()["data"]
    assert sorted(k["key_id"] for k in data) == sorted(k["key_id"] for k in keys)
    assert all("key" not in item for item in data)
    assert set(data[0]) == {"object", "key_id", "prefix", "team", "description", "status", "created_at",
                            "expires_at", "last_used_at", "revoked_at"}
    for minted in keys:
        assert minted["key"] not in listing.text


async def test_revoke_is_one_way(client: httpx.AsyncClient, tables: Tables, clock: Clock) -> None:
    await create_team(client)
    minted = await mint(client)
    path = f"/api/admin/teams/team-a/keys/{minted['key_id']}/revoke"
    first = await client.post(path, headers=H)
    assert first.status_code == 200 and first.json()["status"] == "revoked" and first.json()["revoked_at"]
    record = await KeyRepository(tables).find(minted["key"])
    assert record is not None and not record.is_usable(clock.now)
    again = await client.post(path, headers=H)
    assert again.json()["revoked_at"] == first.json()["revoked_at"]
    rotate = await client.post(f"/api/admin/teams/team-a/keys/{minted['key_id']}/rotate", headers=H)
    assert rotate.status_code == 409
    actions = [e["action"] for e in await AuditLog(tables).list_day(clock.now)]
    assert actions.count("admin.key.revoke") == 1
    missing = await client.post("/api/admin/teams/team-a/keys/key-0000/revoke", headers=H)
    assert missing.status_code == 404
    other_team = await create_team(client, "team-b")
    cross = await client.post(f"/api/admin/teams/{other_team['team']}/keys/{minted['key_id']}/revoke", headers=H)
    assert cross.status_code == 404


async def test_rotate_keeps_old_key_until_grace_ends(client: httpx.AsyncClient, tables: Tables, clock: Clock) -> None:
    await create_team(client)
    old = await mint(client, description="svc")
    response = await client.post(
        f"/api/admin/teams/team-a/keys/{old['key_id']}/rotate", json={"grace_hours": 2}, headers=H
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert is_well_formed(body["key"]) and body["key"] != old["key"] and body["description"] == "svc"
    assert body["previous"]["status"] == "rotating-out"
    repo = KeyRepository(tables)
    old_record, new_record = await repo.find(old["key"]), await repo.find(body["key"])
    assert old_record is not None and new_record is not None
    assert old_record.status is KeyStatus.ROTATING_OUT
    assert old_record.is_usable(clock.now + timedelta(hours=2) - timedelta(seconds=1))
    assert not old_record.is_usable(clock.now + timedelta(hours=2))
    assert new_record.is_usable(clock.now + timedelta(days=365))
    again = await client.post(f"/api/admin/teams/team-a/keys/{old['key_id']}/rotate", headers=H)
    assert again.status_code == 409
    rows = json.dumps(await snapshot(tables), default=str)
    assert body["key"] not in rows and old["key"] not in rows


BAD_MINTS: list[tuple[Any, int]] = [
    (b"{", 400),
    (b"null", 400),
    ({"description": 3}, 400),
    ({"expires_at": "tomorrow"}, 400),
    ({"expires_at": "2099-01-01T00:00:00"}, 400),
    ({"expires_at": "2000-01-01T00:00:00+00:00"}, 400),
    ({"expires_at": 123}, 400),
    ({"key": "lt-choose-my-own"}, 400),
    ({"description": "x" * 5000}, 413),
]


@pytest.mark.parametrize(("body", "status"), BAD_MINTS)
async def test_bad_mint_writes_nothing(client: httpx.AsyncClient, tables: Tables, body: Any, status: int) -> None:
    await create_team(client)
    before = await snapshot(tables)
    if isinstance(body, bytes):
        response = await client.post("/api/admin/teams/team-a/keys", content=body,
                                     headers={**H, "content-type": "application/json"})
    else:
        response = await client.post("/api/admin/teams/team-a/keys", json=body, headers=H)
    assert response.status_code == status, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert await snapshot(tables) == before


@pytest.mark.parametrize("body", [{"grace_hours": -1}, {"grace_hours": "2"}, {"grace_hours": True},
                                  {"grace_hours": 10_000}, {"other": 1}])
async def test_bad_rotate_writes_nothing(client: httpx.AsyncClient, tables: Tables, body: Any) -> None:
    await create_team(client)
    minted = await mint(client)
    before = await snapshot(tables)
    response = await client.post(f"/api/admin/teams/team-a/keys/{minted['key_id']}/rotate", json=body, headers=H)
    assert response.status_code == 400, response.text
    assert await snapshot(tables) == before
