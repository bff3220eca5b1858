"""The stand-in's Entra token endpoints (client credentials with a secret), spoken to over raw HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from localdev.standin import RunningStandin, StandinConfig, start_in_thread

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER_TENANT = "3f1e2d4c-5b6a-4789-9abc-def012345678"
CLIENT_ID = "4a8f2c1e-6b3d-4e5f-9a7b-1c2d3e4f5a6b"
SECRET = "client-secret-Q~value"
V2_API = ("api://liutong-v2", "5e5e5e5e-1111-4222-8333-444444444444")


@pytest.fixture(scope="module")
def standin() -> Iterator[RunningStandin]:
    with start_in_thread(config=StandinConfig(v2_resources=dict([V2_API]))) as running:
        running.state.register_app_registration(client_id=CLIENT_ID, secret=SECRET, tenant_id=TENANT)
        yield running


def post(standin: RunningStandin, path: str, tenant: str = TENANT, **form: str) -> httpx.Response:
    return httpx.post(f"{standin.base_url}/{tenant}/{path}", data=form)


def v2(standin: RunningStandin, tenant: str = TENANT, **form: str) -> httpx.Response:
    values = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET}
    return post(standin, "oauth2/v2.0/token", tenant, **(values | form))


def claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def test_metadata_points_at_the_token_endpoints(standin: RunningStandin) -> None:
    for path, endpoint in [("v2.0/", "oauth2/v2.0/token"), ("", "oauth2/token")]:
        metadata = httpx.get(f"{standin.base_url}/{TENANT}/{path}.well-known/openid-configuration").json()
        assert metadata["token_endpoint"] == f"{standin.base_url}/{TENANT}/{endpoint}"


def test_v2_client_secret_post(standin: RunningStandin) -> None:
    response = v2(standin, scope="https://management.azure.com/.default")
    assert response.status_code == 200
    body = response.json()
    assert {k: v for k, v in body.items() if k != "access_token"} == {
        "token_type": "Bearer",
        "expires_in": 3599,
        "ext_expires_in": 3599,
    }
    token = claims(body["access_token"])
    app = standin.state.app_registrations.find(CLIENT_ID, TENANT)
    assert app is not None
    assert (token["aud"], token["tid"], token["oid"], token["appid"], token["ver"]) == (
        "https://management.azure.com",
        TENANT,
        app.object_id,
        CLIENT_ID,
        "1.0",
    )
    assert "xms_mirid" not in token
    assert response.headers["cache-control"].startswith("no-store")


def test_v2_client_secret_basic_and_v2_resource(standin: RunningStandin) -> None:
    response = httpx.post(
        f"{standin.base_url}/{TENANT}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "scope": f"{V2_API[0]}/.default"},
        auth=(CLIENT_ID, SECRET),
    )
    assert response.status_code == 200
    token = claims(response.json()["access_token"])
    assert (token["aud"], token["azp"], token["ver"]) == (V2_API[1], CLIENT_ID, "2.0")


def test_v1_resource(standin: RunningStandin) -> None:
    form = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET}
    response = post(standin, "oauth2/token", resource="https://vault.azure.net", **form)
    assert response.status_code == 200
    body = response.json()
    assert (body["expires_in"], body["resource"], body["token_type"]) == ("3599", "https://vault.azure.net", "Bearer")
    assert int(body["expires_on"]) - int(body["not_before"]) == 3599
    assert claims(body["access_token"])["aud"] == "https://vault.azure.net"


@pytest.mark.parametrize(
    ("tenant", "form", "status", "error", "code"),
    [
        (TENANT, {"client_secret": "wrong"}, 401, "invalid_client", 7000215),
        (TENANT, {"client_secret": ""}, 401, "invalid_client", 7000218),
        (TENANT, {"client_id": "0f0f0f0f-0000-4000-8000-000000000000"}, 400, "unauthorized_client", 700016),
        (OTHER_TENANT, {}, 400, "unauthorized_client", 700016),
        (TENANT, {"scope": "https://graph.microsoft.com/User.Read"}, 400, "invalid_scope", 1002012),
        (TENANT, {"scope": ""}, 400, "invalid_request", 900144),
        (TENANT, {"grant_type": "password"}, 400, "unsupported_grant_type", 70003),
        ("not-a-tenant", {}, 400, "invalid_tenant", 90002),
    ],
)
def test_errors_look_like_entra(
    standin: RunningStandin, tenant: str, form: dict[str, str], status: int, error: str, code: int
) -> None:
    response = v2(standin, tenant, **({"scope": "https://management.azure.com/.default"} | form))
    assert response.status_code == status
    body = response.json()
    assert (body["error"], body["error_codes"]) == (error, [code])
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert SECRET not in response.text
