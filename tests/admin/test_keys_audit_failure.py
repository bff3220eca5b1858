"""No key leaves the admin API unaudited: a failed audit write revokes the new key and answers 503."""

from __future__ import annotations

import httpx
import pytest

from admin.service import AdminService
from core.errors import StorageUnavailable
from core.tables import Tables
from keystore.models import KeyStatus
from keystore.repository import KeyRepository
from provisioning.audit import AuditEvent, AuditLog
from tests.admin.conftest import auth_header, create_team, mint

H = auth_header()


class FailingKeyAudit(AuditLog):
    """Audit rows for new keys fail (storage outage); everything else is written."""

    async def record(self, event: AuditEvent, *, idempotency_key: str | None = None) -> None:
        if event.action in ("admin.key.mint", "admin.key.rotate"):
            raise StorageUnavailable("Table Storage is unavailable.")
        await super().record(event, idempotency_key=idempotency_key)


async def keys_of(tables: Tables) -> list[tuple[str, KeyStatus]]:
    return [(r.key_id, r.status) for r in await KeyRepository(tables).list_for_owner(team="team-a")]


async def test_mint_whose_audit_fails_hands_out_nothing(
    client: httpx.AsyncClient, admin_service: AdminService, tables: Tables, monkeypatch: pytest.MonkeyPatch
) -> None:
    await create_team(client)
    monkeypatch.setattr(admin_service, "audit", FailingKeyAudit(tables))
    response = await client.post("/api/admin/teams/team-a/keys", json={"description": "x"}, headers=H)
    assert response.status_code == 503 and "lt-" not in response.text
    [(_, status)] = await keys_of(tables)
    assert status is KeyStatus.REVOKED


async def test_rotate_whose_audit_fails_keeps_the_old_key_and_can_be_retried(
    client: httpx.AsyncClient, admin_service: AdminService, tables: Tables, monkeypatch: pytest.MonkeyPatch
) -> None:
    await create_team(client)
    old = await mint(client)
    working = admin_service.audit
    monkeypatch.setattr(admin_service, "audit", FailingKeyAudit(tables))
    path = f"/api/admin/teams/team-a/keys/{old['key_id']}/rotate"
    assert (await client.post(path, headers=H)).status_code == 503
    assert dict(await keys_of(tables))[old["key_id"]] is KeyStatus.ACTIVE
    monkeypatch.setattr(admin_service, "audit", working)
    retried = await client.post(path, headers=H)
    assert retried.status_code == 201, retried.text
    assert retried.json()["previous"]["key_id"] == old["key_id"]
