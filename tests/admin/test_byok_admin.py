"""AdminByok without the stack: what is refused before anything is stored, and what a failed write leaves."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import pytest

from admin.auth import Operator
from admin.byok import AdminByok
from core.errors import InvalidRequest, LiutongError, NotFound, ServiceUnavailable, StorageUnavailable
from core.tables import Tables
from keystore.teams import Team
from limits.plans import Plan, PlanCatalog
from provisioning.audit import AuditLog
from proxy.byok_store import ByokStore
from proxy.upstreams import UpstreamsConfig

NOW = datetime(2025, 6, 1, tzinfo=UTC)
OP = Operator(tid="tenant", oid="operator")
KEY = "sk-admin-unit-0123456789abcdef"
UPSTREAMS = UpstreamsConfig.model_validate({"models": {
    "own": {"kind": "openai", "base_url": "https://provider.example/v1", "model": "m"},
    "azure": {"kind": "azure_openai", "endpoint": "https://x.openai.azure.com", "deployment": "d",
              "api_version": "2024-10-21"},
}})
PLANS = PlanCatalog(plans=(Plan(plan_id="p", models=("own", "azure"), byok="allow"),))
TEAM = Team(team="team-u", plan_id="p", status="active", description="", created_at=NOW)


@dataclass
class FakeVault:
    secrets: dict[str, str] = field(default_factory=dict)
    fail_set: bool = False

    async def get_secret(self, name: str) -> str:
        return self.secrets[name]

    async def set_secret(self, name: str, value: str, *, tags: dict[str, str]) -> None:
        if self.fail_set:
            raise ServiceUnavailable("Key Vault is unavailable for BYOK credentials (ServiceRequestError).")
        self.secrets[name] = value

    async def delete_secret(self, name: str) -> None:
        self.secrets.pop(name, None)

    async def close(self) -> None:
        return None


def provider(status: int) -> httpx.AsyncClient:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url == "https://provider.example/v1/models"
        assert request.headers["authorization"].startswith(f"Bearer {KEY}")
        return httpx.Response(status, json={"object": "list", "data": []})

    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


def admin(tables: Tables, vault: FakeVault | None, status: int = 200, store: ByokStore | None = None) -> AdminByok:
    return AdminByok(
        store=store or ByokStore(tables), vault=vault, upstreams=UPSTREAMS, http=provider(status),
        audit=AuditLog(tables), plans=PLANS, now=lambda: NOW,
    )


async def test_register_replace_and_remove(tables: Tables) -> None:
    vault, changed = FakeVault(), []
    byok = admin(tables, vault)
    byok._on_change = changed.append  # what wiring sets: the proxy forgets the team
    first = await byok.register(OP, TEAM, "own", {"api_key": KEY})
    assert first["last4"] == KEY[-4:] and list(vault.secrets.values()) == [KEY]
    await byok.register(OP, TEAM, "own", {"api_key": KEY + "x"})
    assert list(vault.secrets.values()) == [KEY + "x"]  # the replaced key's secret is deleted
    assert [c["last4"] for c in await byok.list(TEAM)] == [(KEY + "x")[-4:]]
    await byok.remove(OP, TEAM, "own")
    assert vault.secrets == {} and await byok.list(TEAM) == [] and changed == ["team-u"] * 3


@pytest.mark.parametrize(("alias", "error", "code"), [
    ("azure", InvalidRequest, "byok_unsupported_upstream"), ("nope", NotFound, "model_not_found"),
])
async def test_aliases_that_cannot_take_a_key(tables: Tables, alias: str, error: type, code: str) -> None:
    vault = FakeVault()
    with pytest.raises(error) as refused:
        await admin(tables, vault).register(OP, TEAM, alias, {"api_key": KEY})
    assert refused.value.param == "alias" and refused.value.code == code and vault.secrets == {}


@pytest.mark.parametrize(("status", "error"), [(401, InvalidRequest), (403, InvalidRequest), (503, LiutongError)])
async def test_a_key_the_provider_refuses_or_cannot_check_is_not_stored(
    tables: Tables, status: int, error: type
) -> None:
    vault = FakeVault()
    with pytest.raises(error) as refused:
        await admin(tables, vault, status).register(OP, TEAM, "own", {"api_key": KEY})
    assert KEY not in refused.value.message and vault.secrets == {}
    assert await admin(tables, vault).list(TEAM) == []
    if status < 500:
        assert refused.value.param == "api_key"


async def test_without_a_vault_registration_is_unavailable(tables: Tables) -> None:
    with pytest.raises(ServiceUnavailable):
        await admin(tables, None).register(OP, TEAM, "own", {"api_key": KEY})


async def test_a_failed_row_write_deletes_the_new_secret(tables: Tables) -> None:
    class BrokenStore(ByokStore):
        async def put(self, entry: object) -> None:
            raise StorageUnavailable("Storage is unavailable (ServiceRequestError).")

    vault = FakeVault()
    with pytest.raises(StorageUnavailable):
        await admin(tables, vault, store=BrokenStore(tables)).register(OP, TEAM, "own", {"api_key": KEY})
    assert vault.secrets == {}
