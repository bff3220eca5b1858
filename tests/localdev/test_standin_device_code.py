"""The stand-in's device code flow and delegated tokens, through msal's real PublicClientApplication over
HTTPS, approved on the HTML page the way a person would (httpx posting its form)."""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jwt
import msal
import pytest

from admin.auth import AdminAuthenticator, Operator
from admin.settings import AdminSettings
from core.ca_bundle import CaBundleSession
from core.errors import PermissionDenied
from core.settings import Settings
from localdev.standin import OPERATOR_UPN, USER_UPN, RunningStandin, approve_device_code, start_in_thread

API_URI, API_CLIENT_ID = "api://liutong-admin-test", "0a0a0a0a-1111-4222-8333-444444444444"
SCOPE = f"{API_URI}/user_impersonation"
PUBLIC_CLIENT = "5b5b5b5b-1111-4222-8333-444444444444"
AUTOMATION, AUTOMATION_SECRET = "6c6c6c6c-1111-4222-8333-444444444444", "automation-secret"
UNGRANTED = "7d7d7d7d-1111-4222-8333-444444444444"
ROLE = "Liutong.Admin"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture(scope="module")
def standin() -> Iterator[RunningStandin]:
    with start_in_thread(tls_port=0, device_code_interval_seconds=1) as running:
        state, tenant = running.state, running.state.config.publisher_tenant_id
        state.directory.expose_api(app_id_uri=API_URI, client_id=API_CLIENT_ID, v2=True)
        state.directory.register_public_client(client_id=PUBLIC_CLIENT, tenant_id=tenant, name="Test CLI")
        state.register_app_registration(client_id=AUTOMATION, secret=AUTOMATION_SECRET, tenant_id=tenant)
        state.register_app_registration(client_id=UNGRANTED, secret=AUTOMATION_SECRET, tenant_id=tenant)
        state.grant_app_role(AUTOMATION, resource=API_URI, role=ROLE)
        state.grant_user_app_role(OPERATOR_UPN, resource=API_CLIENT_ID, role=ROLE)
        yield running


def tenant_of(standin: RunningStandin) -> str:
    return standin.state.config.publisher_tenant_id


def public_app(standin: RunningStandin, client_id: str = PUBLIC_CLIENT) -> Any:
    assert standin.https_url is not None and standin.ca_path is not None
    return msal.PublicClientApplication(
        client_id, authority=f"{standin.https_url}/{tenant_of(standin)}", instance_discovery=False,
        http_client=CaBundleSession(str(standin.ca_path)), token_cache=msal.SerializableTokenCache(),
    )


def approve_in_browser(standin: RunningStandin, flow: dict[str, Any], user: str, action: str = "approve") -> str:
    with httpx.Client() as browser:
        page = browser.get(flow["verification_uri"])
        assert page.status_code == 200 and "Enter code" in page.text
        oid = re.search(rf'<option value="([0-9a-f-]+)">[^<]*\({re.escape(user)}\)', page.text)
        assert oid is not None
        answer = browser.post(
            flow["verification_uri"], data={"user_code": flow["user_code"], "user": oid.group(1), "action": action}
        )
    assert answer.status_code == 200, answer.text
    return answer.text


def claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def poll(standin: RunningStandin, device_code: str, client_id: str = PUBLIC_CLIENT) -> httpx.Response:
    return httpx.post(
        f"{standin.base_url}/{tenant_of(standin)}/oauth2/v2.0/token",
        data={"grant_type": DEVICE_GRANT, "client_id": client_id, "device_code": device_code},
    )


def test_device_code_sign_in_with_msal(standin: RunningStandin) -> None:
    app = public_app(standin)
    flow = app.initiate_device_flow(scopes=[SCOPE])
    assert flow["verification_uri"] == f"{standin.base_url}/devicelogin"
    assert (flow["interval"], flow["expires_in"]) == (1, 900)
    assert flow["user_code"] in flow["message"] and flow["verification_uri"] in flow["message"]
    assert "signed in to Test CLI as operator@liutong.local" in approve_in_browser(standin, flow, OPERATOR_UPN)

    result = app.acquire_token_by_device_flow(flow)
    assert "access_token" in result, result.get("error_description")
    operator = standin.state.directory.user(OPERATOR_UPN)
    assert operator is not None
    token = claims(result["access_token"])
    assert (token["aud"], token["ver"], token["azp"], token["scp"], token["roles"]) == (
        API_CLIENT_ID, "2.0", PUBLIC_CLIENT, "user_impersonation", [ROLE]
    )
    assert (token["tid"], token["oid"], token["iss"]) == (
        operator.tenant_id, operator.oid, f"{standin.base_url}/{operator.tenant_id}/v2.0"
    )
    assert "idtyp" not in token
    identity = result["id_token_claims"]
    assert (identity["aud"], identity["preferred_username"], identity["oid"], identity["tid"]) == (
        PUBLIC_CLIENT, OPERATOR_UPN, operator.oid, operator.tenant_id
    )
    assert result["refresh_token"] and result["client_info"]

    [account] = app.get_accounts()
    assert (account["username"], account["home_account_id"]) == (OPERATOR_UPN, f"{operator.oid}.{operator.tenant_id}")
    cached = app.acquire_token_silent([SCOPE], account=account)
    assert cached["token_source"] == "cache"
    refreshed = app.acquire_token_silent([SCOPE], account=account, force_refresh=True)
    assert refreshed["token_source"] == "identity_provider"
    assert claims(refreshed["access_token"])["roles"] == [ROLE]


def test_a_user_without_the_role_gets_no_roles_claim(standin: RunningStandin) -> None:
    app = public_app(standin)
    flow = app.initiate_device_flow(scopes=[f"{API_URI}/.default"])
    approve_device_code(standin.state, flow["user_code"], USER_UPN)
    result = app.acquire_token_by_device_flow(flow)
    token = claims(result["access_token"])
    assert token["preferred_username"] == USER_UPN and token["scp"] == "user_impersonation"
    assert "roles" not in token


def test_pending_declined_and_expired_answer_like_entra(standin: RunningStandin) -> None:
    app = public_app(standin)
    flow = app.initiate_device_flow(scopes=[SCOPE])
    once = app.acquire_token_by_device_flow(flow, exit_condition=lambda _: True)
    assert (once["error"], once["error_codes"]) == ("authorization_pending", [70016])
    pending = poll(standin, flow["device_code"])
    assert pending.status_code == 400 and pending.json()["error_description"].startswith("AADSTS70016: ")

    assert "declined" in approve_in_browser(standin, flow, OPERATOR_UPN, action="decline")
    declined = app.acquire_token_by_device_flow(flow)
    assert (declined["error"], declined["error_codes"]) == ("authorization_declined", [70000])

    stale = app.initiate_device_flow(scopes=[SCOPE])
    found = standin.state.sign_ins.by_user_code(stale["user_code"])
    assert found is not None
    standin.state.sign_ins.expire(found)
    expired = app.acquire_token_by_device_flow(stale)
    assert (expired["error"], expired["error_codes"]) == ("expired_token", [70020])


def test_a_device_code_yields_tokens_once_and_only_to_its_client(standin: RunningStandin) -> None:
    app = public_app(standin)
    flow = app.initiate_device_flow(scopes=[SCOPE])
    approve_device_code(standin.state, flow["user_code"])
    assert poll(standin, flow["device_code"], client_id=AUTOMATION).json()["error_codes"] == [7000218]
    assert "access_token" in app.acquire_token_by_device_flow(flow)
    assert poll(standin, flow["device_code"]).json()["error"] == "bad_verification_code"


def test_unknown_clients_and_bad_codes_are_refused(standin: RunningStandin) -> None:
    unknown = httpx.post(
        f"{standin.base_url}/{tenant_of(standin)}/oauth2/v2.0/devicecode",
        data={"client_id": "0f0f0f0f-0000-4000-8000-000000000000", "scope": SCOPE},
    )
    assert (unknown.status_code, unknown.json()["error_codes"]) == (400, [700016])
    bad_scope = httpx.post(
        f"{standin.base_url}/{tenant_of(standin)}/oauth2/v2.0/devicecode",
        data={"client_id": PUBLIC_CLIENT, "scope": f"{API_URI}/Files.Write"},
    )
    assert bad_scope.json()["error"] == "invalid_scope"
    page = httpx.post(f"{standin.base_url}/devicelogin", data={"user_code": "NOPE", "action": "approve"})
    assert page.status_code == 400 and "didn&#x27;t work" in page.text
    rt = httpx.post(
        f"{standin.base_url}/{tenant_of(standin)}/oauth2/v2.0/token",
        data={"grant_type": "refresh_token", "client_id": PUBLIC_CLIENT, "refresh_token": "0.Anope", "scope": SCOPE},
    )
    assert (rt.status_code, rt.json()["error"]) == (400, "invalid_grant")


def test_https_metadata_points_at_https_endpoints_with_the_same_issuer(standin: RunningStandin) -> None:
    tenant = tenant_of(standin)
    assert standin.ca_path is not None
    with httpx.Client(verify=ssl.create_default_context(cafile=standin.ca_path)) as http:
        tls = http.get(f"{standin.https_url}/{tenant}/v2.0/.well-known/openid-configuration").json()
    plain = httpx.get(f"{standin.base_url}/{tenant}/v2.0/.well-known/openid-configuration").json()
    assert tls["device_authorization_endpoint"] == f"{standin.https_url}/{tenant}/oauth2/v2.0/devicecode"
    assert plain["token_endpoint"] == f"{standin.base_url}/{tenant}/oauth2/v2.0/token"
    assert tls["issuer"] == plain["issuer"] == f"{standin.base_url}/{tenant}/v2.0"


def app_token(standin: RunningStandin, client_id: str) -> str:
    response = httpx.post(
        f"{standin.base_url}/{tenant_of(standin)}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": AUTOMATION_SECRET,
              "scope": f"{API_URI}/.default"},
    )
    return str(response.json()["access_token"])


def test_client_credentials_carry_roles_only_when_granted(standin: RunningStandin) -> None:
    assert claims(app_token(standin, AUTOMATION))["roles"] == [ROLE]
    assert "roles" not in claims(app_token(standin, UNGRANTED))


@pytest.fixture
async def authenticator(standin: RunningStandin) -> AsyncIterator[AdminAuthenticator]:
    # The admin settings LocalStack gives the service, for this stand-in.
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, entra_authority=standin.base_url, entra_v1_issuer_host=f"{standin.base_url}/sts",
        admin_tenant_id=tenant_of(standin), admin_app_id_uri=API_URI, admin_client_id=API_CLIENT_ID,
        admin_role=ROLE, jwks_min_refresh_seconds=0,
    )
    async with httpx.AsyncClient() as http:
        yield AdminAuthenticator.from_settings(settings, AdminSettings.from_settings(settings), http=http)


def user_token(standin: RunningStandin, user: str) -> str:
    app = public_app(standin)
    flow = app.initiate_device_flow(scopes=[SCOPE])
    approve_device_code(standin.state, flow["user_code"], user)
    return str(app.acquire_token_by_device_flow(flow)["access_token"])


async def test_the_admin_api_accepts_the_operator_and_the_automation_app(
    standin: RunningStandin, authenticator: AdminAuthenticator
) -> None:
    operator = standin.state.directory.user(OPERATOR_UPN)
    assert operator is not None
    assert await authenticator.authenticate(user_token(standin, OPERATOR_UPN)) == Operator(
        tid=operator.tenant_id, oid=operator.oid
    )
    assert (await authenticator.authenticate(app_token(standin, AUTOMATION))).tid == tenant_of(standin)
    for refused in (user_token(standin, USER_UPN), app_token(standin, UNGRANTED)):
        with pytest.raises(PermissionDenied, match="admin role"):
            await authenticator.authenticate(refused)
