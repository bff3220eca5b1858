"""The Azure stand-in against real clients: azure-identity's ManagedIdentityCredential, httpx + pyjwt."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ManagedIdentityCredential as SyncManagedIdentityCredential
from azure.identity.aio import ManagedIdentityCredential

from localdev.standin import RunningStandin, StandinConfig, start_in_thread

SERVICE_CLIENT_ID = "0b6f1f39-3c5e-4b8c-9a43-2f5d7e0c1a11"
SERVICE_PRINCIPAL_ID = "9d2c4e61-7a1b-4f0e-8c3d-5b6a7e8f9012"
PUBLISHER_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CUSTOMER_TENANT = "3f1e2d4c-5b6a-4789-9abc-def012345678"
ARM = "https://management.azure.com/"
API = "2021-07-01"
SUB = "11111111-aaaa-4bbb-8ccc-222222222222"
PROVIDERS = f"/subscriptions/{SUB}/resourceGroups/customer-rg/providers"
APP_ID = f"{PROVIDERS}/Microsoft.Solutions/applications/liutong-app"
UAMI_ID = f"{PROVIDERS}/Microsoft.ManagedIdentity/userAssignedIdentities/app-uami"


@pytest.fixture(scope="module")
def standin() -> Iterator[RunningStandin]:
    config = StandinConfig(
        identity_header="test-identity-header",
        service_client_id=SERVICE_CLIENT_ID,
        service_principal_id=SERVICE_PRINCIPAL_ID,
        publisher_tenant_id=PUBLISHER_TENANT,
        v2_resources={"api://liutong-v2": "5e5e5e5e-1111-4222-8333-444444444444"},
    )
    with start_in_thread(config=config) as running:
        yield running


@pytest.fixture(scope="module")
def managed_app(standin: RunningStandin) -> dict[str, Any]:
    token = standin.state.mint_token(tid=PUBLISHER_TENANT, oid=SERVICE_PRINCIPAL_ID, aud=ARM)
    body = {
        "kind": "MarketPlace",
        "location": "westeurope",
        "plan": {"name": "standard", "product": "liutong", "publisher": "contoso", "version": "1.0.0"},
        "identity": {
            "type": "SystemAssigned,UserAssigned",
            "tenantId": CUSTOMER_TENANT,
            "userAssignedIdentities": {UAMI_ID: {}},
        },
        "properties": {"managedResourceGroupId": f"/subscriptions/{SUB}/resourceGroups/mrg-liutong"},
    }
    response = httpx.put(
        f"{standin.base_url}{APP_ID}",
        params={"api-version": API},
        json=body,
        headers={"authorization": f"Bearer {token}"},
    )
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


@pytest.fixture
def msi_env(standin: RunningStandin, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MSI_ENDPOINT", "IMDS_ENDPOINT", "IDENTITY_SERVER_THUMBPRINT", "AZURE_FEDERATED_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in standin.environ().items():
        monkeypatch.setenv(name, value)


async def verified_claims(
    standin: RunningStandin, token: str, *, audience: str, v2: bool = False
) -> dict[str, Any]:
    """Validate as a relying party would: metadata -> jwks_uri -> key by kid -> RS256 + aud + iss."""
    unverified = jwt.decode(token, options={"verify_signature": False})
    tid = unverified["tid"]
    path = (
        f"/{tid}/v2.0/.well-known/openid-configuration" if v2 else f"/{tid}/.well-known/openid-configuration"
    )
    async with httpx.AsyncClient() as http:
        metadata = (await http.get(standin.base_url + path)).json()
        jwks = (await http.get(metadata["jwks_uri"])).json()
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
    claims: dict[str, Any] = jwt.decode(
        token, key.key, algorithms=["RS256"], audience=audience, issuer=metadata["issuer"]
    )
    return claims


async def test_service_identity_token_for_third_party_audience_has_no_mirid(
    standin: RunningStandin, msi_env: None
) -> None:
    async with ManagedIdentityCredential() as credential:
        access = await credential.get_token("api://liutong")

    claims = await verified_claims(standin, access.token, audience="api://liutong")
    assert claims["iss"] == f"{standin.base_url}/sts/{PUBLISHER_TENANT}/"
    assert (claims["tid"], claims["oid"], claims["sub"]) == (
        PUBLISHER_TENANT,
        SERVICE_PRINCIPAL_ID,
        SERVICE_PRINCIPAL_ID,
    )
    assert (claims["appid"], claims["appidacr"], claims["idtyp"], claims["ver"]) == (
        SERVICE_CLIENT_ID,
        "2",
        "app",
        "1.0",
    )
    assert "xms_mirid" not in claims
    assert 3500 <= claims["exp"] - claims["iat"] <= 3600
    assert "x5t" in jwt.get_unverified_header(access.token)


async def test_arm_audience_token_carries_mirid(standin: RunningStandin, msi_env: None) -> None:
    async with ManagedIdentityCredential() as credential:
        access = await credential.get_token("https://management.azure.com/.default")

    claims = await verified_claims(standin, access.token, audience="https://management.azure.com")
    assert claims["xms_mirid"] == standin.state.config.service_resource_id


@pytest.mark.parametrize("selector", ["mi_res_id", "object_id", "principal_id", "client_id"])
async def test_managed_app_system_identity_is_selectable(
    standin: RunningStandin, managed_app: dict[str, Any], msi_env: None, selector: str
) -> None:
    identity = managed_app["identity"]
    app_identity = standin.state.identities.find("mi_res_id", APP_ID)
    assert app_identity is not None
    app_client_id = app_identity.client_id
    value = {"mi_res_id": APP_ID, "client_id": app_client_id}.get(selector, identity["principalId"])
    async with ManagedIdentityCredential(identity_config={selector: value}) as credential:
        access = await credential.get_token("api://liutong")

    claims = await verified_claims(standin, access.token, audience="api://liutong")
    assert (claims["tid"], claims["oid"]) == (CUSTOMER_TENANT, identity["principalId"])
    assert claims["appid"] == app_client_id
    assert "xms_mirid" not in claims


async def test_user_assigned_identity_by_client_id_keyword(
    standin: RunningStandin, managed_app: dict[str, Any], msi_env: None
) -> None:
    uami = managed_app["identity"]["userAssignedIdentities"][UAMI_ID]
    async with ManagedIdentityCredential(client_id=uami["clientId"]) as credential:
        access = await credential.get_token(ARM + ".default")

    claims = await verified_claims(standin, access.token, audience="https://management.azure.com")
    assert (claims["tid"], claims["oid"], claims["appid"]) == (
        uami["tenantId"],
        uami["principalId"],
        uami["clientId"],
    )
    assert claims["xms_mirid"] == UAMI_ID


def test_sync_msal_credential_maps_resource_id_to_mi_res_id(
    standin: RunningStandin, managed_app: dict[str, Any], msi_env: None
) -> None:
    credential = SyncManagedIdentityCredential(identity_config={"resource_id": APP_ID})
    access = credential.get_token("api://liutong")

    claims = jwt.decode(access.token, options={"verify_signature": False})
    assert claims["oid"] == managed_app["identity"]["principalId"]


async def test_v2_resource_gets_v2_token_with_client_id_audience(
    standin: RunningStandin, msi_env: None
) -> None:
    async with ManagedIdentityCredential() as credential:
        access = await credential.get_token("api://liutong-v2/.default")

    audience = "5e5e5e5e-1111-4222-8333-444444444444"
    claims = await verified_claims(standin, access.token, audience=audience, v2=True)
    assert claims["iss"] == f"{standin.base_url}/{PUBLISHER_TENANT}/v2.0"
    assert (claims["ver"], claims["azp"], claims["azpacr"]) == ("2.0", SERVICE_CLIENT_ID, "2")
    assert "appid" not in claims


async def test_wrong_identity_header_is_rejected(
    standin: RunningStandin, msi_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDENTITY_HEADER", "not-the-secret")
    async with ManagedIdentityCredential() as credential:
        with pytest.raises(ClientAuthenticationError):
            await credential.get_token("api://liutong")

    response = httpx.get(
        standin.msi_endpoint, params={"api-version": "2019-08-01", "resource": "api://liutong"}
    )
    assert response.status_code == 400


async def test_unknown_identity_is_a_400_like_app_service(standin: RunningStandin, msi_env: None) -> None:
    async with ManagedIdentityCredential(client_id="00000000-0000-4000-8000-000000000000") as credential:
        with pytest.raises(ClientAuthenticationError):
            await credential.get_token("api://liutong")

    response = httpx.get(
        standin.msi_endpoint,
        params={"api-version": "2019-08-01", "resource": "api://liutong", "mi_res_id": "/nope"},
        headers={"X-IDENTITY-HEADER": standin.identity_header},
    )
    assert response.status_code == 400
    assert response.json()["message"] == "Unable to load the proper Managed Identity."


def test_raw_msi_response_shape(standin: RunningStandin) -> None:
    response = httpx.get(
        standin.msi_endpoint,
        params={"api-version": "2019-08-01", "resource": "api://liutong"},
        headers={"X-IDENTITY-HEADER": standin.identity_header},
    )
    body = response.json()
    assert set(body) == {"access_token", "expires_on", "resource", "token_type", "client_id"}
    assert body["expires_on"].isdigit()
    assert (body["resource"], body["token_type"], body["client_id"]) == (
        "api://liutong",
        "Bearer",
        SERVICE_CLIENT_ID,
    )


def test_app_service_only_selector_spellings(standin: RunningStandin) -> None:
    response = httpx.get(
        standin.msi_endpoint,
        params={"api-version": "2019-08-01", "resource": "api://liutong", "resource_id": APP_ID},
        headers={"X-IDENTITY-HEADER": standin.identity_header},
    )
    assert response.status_code == 400
    assert "mi_res_id" in response.json()["message"]
