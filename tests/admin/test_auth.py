"""Every admin route refuses anything but a publisher-tenant Entra token with the admin role."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from core.tables import Tables
from keystore.keys import generate_key
from tests.admin.conftest import ADMIN_APP_ID_URI, admin_token, auth_header, create_team, mint, snapshot
from tests.provisioning.tokens import AUTHORITY, NOW, OTHER_TENANT, TENANT, sign, v1_claims, v2_claims

BAD_CREDENTIALS: dict[str, tuple[dict[str, str], int]] = {
    "no token": ({}, 401),
    "basic auth": ({"authorization": "Basic dXNlcjpwYXNz"}, 401),
    "liutong key": ({"authorization": f"Bearer {generate_key()}"}, 401),
    "other tenant": (auth_header(admin_token(tid=OTHER_TENANT, iss=f"{AUTHORITY}/{OTHER_TENANT}/v2.0")), 403),
    "no role": (auth_header(admin_token(roles=None)), 403),
    "other role": (auth_header(admin_token(roles=["Liutong.Reader", "liutong.admin"])), 403),
    "expired": (auth_header(admin_token(exp=int(NOW) - 1)), 401),
    "key-exchange audience": (auth_header(sign(v2_claims(roles=["Liutong.Admin"]))), 401),
    "key-exchange v1 token": (auth_header(sign(v1_claims(roles=["Liutong.Admin"]))), 401),
    "garbage": ({"authorization": "Bearer not.a.jwt"}, 401),
}


def requests(key_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("GET", "/api/admin/teams", None),
        ("POST", "/api/admin/teams", {"team": "team-new", "plan_id": "starter"}),
        ("GET", "/api/admin/teams/team-a", None),
        ("PATCH", "/api/admin/teams/team-a", {"description": "changed"}),
        ("POST", "/api/admin/teams/team-a/suspend", None),
        ("POST", "/api/admin/teams/team-a/resume", None),
        ("GET", "/api/admin/teams/team-a/keys", None),
        ("POST", "/api/admin/teams/team-a/keys", {"description": "x"}),
        ("POST", f"/api/admin/teams/team-a/keys/{key_id}/revoke", None),
        ("POST", f"/api/admin/teams/team-a/keys/{key_id}/rotate", None),
    ]


async def test_every_route_refuses_bad_credentials(client: httpx.AsyncClient, tables: Tables) -> None:
    await create_team(client)
    minted = await mint(client)
    before = await snapshot(tables)
    for label, (headers, status) in BAD_CREDENTIALS.items():
        for method, path, body in requests(minted["key_id"]):
            response = await client.request(method, path, json=body, headers=headers)
            assert response.status_code == status, (label, method, path, response.text)
            error = response.json()["error"]
            assert set(error) == {"message", "type", "param", "code"}
            assert error["type"] == ("authentication_error" if status == 401 else "permission_error")
            assert "lt-" not in response.text
    assert await snapshot(tables) == before


@pytest.mark.parametrize("aud", [ADMIN_APP_ID_URI, "99999999-8888-7777-6666-555555555555"])
async def test_both_admin_audiences_accepted(client: httpx.AsyncClient, aud: str) -> None:
    response = await client.get("/api/admin/teams", headers=auth_header(admin_token(aud=aud)))
    assert response.status_code == 200, response.text


async def test_v1_admin_token_of_the_publisher_tenant(client: httpx.AsyncClient) -> None:
    token = sign(v1_claims(aud=ADMIN_APP_ID_URI, roles=["Liutong.Admin"], tid=TENANT))
    assert (await client.get("/api/admin/teams", headers=auth_header(token))).status_code == 200


async def test_refusal_logs_no_token(client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    key = generate_key()
    token = admin_token(roles=None)
    await client.get("/api/admin/teams", headers=auth_header(key))
    await client.get("/api/admin/teams", headers=auth_header(token))
    assert key not in caplog.text and token not in caplog.text
