"""Admin handlers in a Starlette app of their own (ASGI transport), over real Azurite tables.

Admin tokens are real RS256 JWTs signed by a local key, served as JWKS by FakeEntra on httpx.MockTransport.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from admin import handlers
from admin.auth import AdminAuthenticator
from admin.routes import ADMIN_ROUTES
from admin.service import AdminService
from core.settings import Settings
from core.tables import TABLES, Tables
from keystore.repository import KeyRepository
from limits.plans import PlanCatalog
from provisioning.audit import AuditLog
from provisioning.entra import TokenValidator
from provisioning.jwks import JwksCache
from tests.admin import usage_seed
from tests.provisioning.tokens import AUTHORITY, NOW, TENANT, V1_ISSUER_HOST, FakeClock, FakeEntra, sign, v2_claims
from usage.records import UsageRecord

ADMIN_APP_ID_URI = "api://liutong-admin-test"
ADMIN_CLIENT_ID = "99999999-8888-7777-6666-555555555555"
ROLE = "Liutong.Admin"


def admin_token(**overrides: Any) -> str:
    claims: dict[str, Any] = {"aud": ADMIN_CLIENT_ID, "roles": [ROLE]}
    claims.update(overrides)
    return sign(v2_claims(**claims))


def auth_header(token: str | None = None) -> dict[str, str]:
    return {"authorization": f"Bearer {token or admin_token()}"}


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def token_clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def admin_service(
    tables: Tables, make_settings: Callable[..., Settings], token_clock: FakeClock, clock: Clock
) -> AsyncIterator[AdminService]:
    entra = FakeEntra()
    http = entra.client()
    jwks = JwksCache(http=http, authority=AUTHORITY, max_age_seconds=3600, min_refresh_seconds=0)
    validator = TokenValidator(
        jwks=jwks, audiences=(ADMIN_APP_ID_URI, ADMIN_CLIENT_ID), authority=AUTHORITY,
        v1_issuer_host=V1_ISSUER_HOST, leeway_seconds=0, now=token_clock,
    )
    service = AdminService(
        auth=AdminAuthenticator(validator=validator, tenant_id=TENANT, role=ROLE),
        tables=tables, keys=KeyRepository(tables), audit=AuditLog(tables),
        plans=PlanCatalog.load(make_settings().plans_file), max_body_bytes=4096, now=clock,
    )
    try:
        yield service
    finally:
        await http.aclose()


@pytest.fixture
async def client(admin_service: AdminService, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    async def current() -> AdminService:
        return admin_service

    monkeypatch.setattr(handlers, "get_admin_service", current)
    routes = [Route("/" + path, handler, methods=list(methods)) for path, methods, handler in ADMIN_ROUTES]
    app = Starlette(routes=routes)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin.test") as http:
        yield http


async def snapshot(tables: Tables) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, for "nothing changed" and "the key is nowhere" checks."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for logical in TABLES:
        entities = [dict(e) async for e in tables.table(logical).list_entities()]
        rows[logical] = sorted(entities, key=lambda e: (e["PartitionKey"], e["RowKey"]))
    return rows


@pytest.fixture
async def records(tables: Tables, clock: Clock) -> list[UsageRecord]:
    """The usage-report seed (tests/admin/usage_seed.py), written; the clock at its NOW."""
    clock.now = usage_seed.NOW
    seeded = usage_seed.seed_records()
    await usage_seed.write(tables, seeded)
    return seeded


def assert_invalid_request(response: httpx.Response, *, status: int = 400, param: str | None = None) -> None:
    """An OpenAI-style invalid_request_error with `status`; with `param`, naming that parameter."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param


async def create_team(client: httpx.AsyncClient, name: str = "team-a", plan_id: str = "starter") -> dict[str, Any]:
    response = await client.post(
        "/api/admin/teams", json={"team": name, "plan_id": plan_id, "description": "first"}, headers=auth_header()
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def mint(client: httpx.AsyncClient, team: str = "team-a", **body: Any) -> dict[str, Any]:
    response = await client.post(f"/api/admin/teams/{team}/keys", json=body, headers=auth_header())
    assert response.status_code == 201, response.text
    minted: dict[str, Any] = response.json()
    return minted
