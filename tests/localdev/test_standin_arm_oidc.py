"""The stand-in's ARM resources and OpenID metadata, over plain HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jwt
import pytest

from localdev.standin import RunningStandin, StandinConfig, stable_guid, start_in_thread

PUBLISHER_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CUSTOMER_TENANT = "3f1e2d4c-5b6a-4789-9abc-def012345678"
SUB = "22222222-aaaa-4bbb-8ccc-333333333333"
RG_PATH = f"/subscriptions/{SUB}/resourceGroups/customer-rg/providers"
API = {"api-version": "2021-07-01"}


@pytest.fixture(scope="module")
def standin() -> Iterator[RunningStandin]:
    with start_in_thread(config=StandinConfig(publisher_tenant_id=PUBLISHER_TENANT)) as running:
        yield running


@pytest.fixture
async def http(standin: RunningStandin) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=standin.base_url) as client:
        yield client


def bearer(standin: RunningStandin, **overrides: Any) -> dict[str, str]:
    values: dict[str, Any] = {
        "tid": PUBLISHER_TENANT,
        "oid": stable_guid("operator"),
        "aud": "https://management.azure.com",
    }
    values.update(overrides)
    return {"authorization": f"Bearer {standin.state.mint_token(**values)}"}


def application_body(**identity: Any) -> dict[str, Any]:
    return {
        "kind": "MarketPlace",
        "location": "westeurope",
        "plan": {"name": "standard", "product": "liutong", "publisher": "contoso", "version": "1.0.0"},
        "identity": {"type": "SystemAssigned", **identity},
        "properties": {"managedResourceGroupId": f"/subscriptions/{SUB}/resourceGroups/mrg"},
    }


async def test_put_then_get_application(standin: RunningStandin, http: httpx.AsyncClient) -> None:
    app_id = f"{RG_PATH}/Microsoft.Solutions/applications/put-get"
    created = await http.put(
        app_id, params=API, json=application_body(tenantId=CUSTOMER_TENANT), headers=bearer(standin)
    )
    assert created.status_code == 201
    again = await http.put(
        app_id, params=API, json=application_body(tenantId=CUSTOMER_TENANT), headers=bearer(standin)
    )
    assert again.status_code == 200

    response = await http.get(
        app_id.upper().replace("/SUBSCRIPTIONS", "/subscriptions"),
        params=API,
        headers=bearer(standin, aud="https://management.azure.com/"),
    )
    assert response.status_code == 200
    app = response.json()
    assert (app["id"], app["name"], app["type"], app["kind"]) == (
        app_id,
        "put-get",
        "Microsoft.Solutions/applications",
        "MarketPlace",
    )
    assert app["plan"]["name"] == "standard"
    assert app["identity"]["tenantId"] == CUSTOMER_TENANT
    assert (
        app["identity"]["principalId"]
        == created.json()["identity"]["principalId"]
        == again.json()["identity"]["principalId"]
    )
    properties = app["properties"]
    assert properties["provisioningState"] == "Succeeded"
    assert properties["publisherTenantId"] == PUBLISHER_TENANT
    assert len(properties["billingDetails"]["resourceUsageId"]) == 36
    assert standin.state.identities.find("principal_id", app["identity"]["principalId"]) is not None


async def test_test_knobs_fix_usage_id_and_default_tenant_is_per_subscription(
    standin: RunningStandin, http: httpx.AsyncClient
) -> None:
    body = application_body()
    body["properties"]["billingDetails"] = {"resourceUsageId": "aaaaaaaa-0000-4000-8000-000000000001"}
    first = await http.put(
        f"{RG_PATH}/Microsoft.Solutions/applications/knob-a", params=API, json=body, headers=bearer(standin)
    )
    second = await http.put(
        f"{RG_PATH}/Microsoft.Solutions/applications/knob-b",
        params=API,
        json=application_body(),
        headers=bearer(standin),
    )
    assert (
        first.json()["properties"]["billingDetails"]["resourceUsageId"]
        == "aaaaaaaa-0000-4000-8000-000000000001"
    )
    assert (
        first.json()["identity"]["tenantId"]
        == second.json()["identity"]["tenantId"]
        == standin.state.tenant_for_subscription(SUB)
    )
    assert first.json()["identity"]["principalId"] != second.json()["identity"]["principalId"]


async def test_user_assigned_identity_resource_is_reused_by_applications(
    standin: RunningStandin, http: httpx.AsyncClient
) -> None:
    uami_id = f"{RG_PATH}/Microsoft.ManagedIdentity/userAssignedIdentities/shared"
    uami = await http.put(
        uami_id,
        params={"api-version": "2023-01-31"},
        json={"location": "westeurope"},
        headers=bearer(standin),
    )
    assert uami.status_code == 201
    body = application_body(userAssignedIdentities={uami_id: {}})
    body["identity"]["type"] = "UserAssigned"
    app = await http.put(
        f"{RG_PATH}/Microsoft.Solutions/applications/with-uami",
        params=API,
        json=body,
        headers=bearer(standin),
    )

    listed = app.json()["identity"]["userAssignedIdentities"][uami_id]
    assert listed == {key: uami.json()["properties"][key] for key in ("principalId", "clientId", "tenantId")}
    assert "principalId" not in app.json()["identity"]


async def test_delete_then_unknown_is_404_and_identity_gone(
    standin: RunningStandin, http: httpx.AsyncClient
) -> None:
    app_id = f"{RG_PATH}/Microsoft.Solutions/applications/short-lived"
    await http.put(app_id, params=API, json=application_body(), headers=bearer(standin))
    assert (await http.delete(app_id, params=API, headers=bearer(standin))).status_code == 200
    assert (await http.delete(app_id, params=API, headers=bearer(standin))).status_code == 204

    response = await http.get(app_id, params=API, headers=bearer(standin))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "ResourceNotFound"
    assert standin.state.identities.find("mi_res_id", app_id) is None


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "AuthenticationFailed"),
        ({"authorization": "Bearer not-a-jwt"}, "InvalidAuthenticationToken"),
        ({"authorization": "Basic dXNlcjpwYXNz"}, "AuthenticationFailed"),
    ],
)
async def test_arm_rejects_missing_or_malformed_tokens(
    http: httpx.AsyncClient, headers: dict[str, str], code: str
) -> None:
    response = await http.get(f"{RG_PATH}/Microsoft.Solutions/applications/x", params=API, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code
    assert response.headers["www-authenticate"].startswith("Bearer ")


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"lifetime_seconds": -60}, "ExpiredAuthenticationToken"),
        ({"aud": "api://liutong"}, "InvalidAuthenticationTokenAudience"),
        ({"extra_claims": {"iss": "https://sts.windows.net/evil/"}}, "InvalidAuthenticationTokenTenant"),
    ],
)
async def test_arm_rejects_expired_misaddressed_or_foreign_tokens(
    standin: RunningStandin, http: httpx.AsyncClient, overrides: dict[str, Any], code: str
) -> None:
    response = await http.get(
        f"{RG_PATH}/Microsoft.Solutions/applications/x", params=API, headers=bearer(standin, **overrides)
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code


async def test_arm_rejects_token_signed_by_another_key(
    standin: RunningStandin, http: httpx.AsyncClient
) -> None:
    with start_in_thread() as other:
        forged = other.state.mint_token(
            tid=PUBLISHER_TENANT,
            oid="x",
            aud="https://management.azure.com",
            extra_claims={"iss": standin.state.v1_issuer(PUBLISHER_TENANT)},
        )
    response = await http.get(
        f"{RG_PATH}/Microsoft.Solutions/applications/x",
        params=API,
        headers={"authorization": f"Bearer {forged}"},
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"


async def test_arm_requires_api_version_and_valid_body(
    standin: RunningStandin, http: httpx.AsyncClient
) -> None:
    app_id = f"{RG_PATH}/Microsoft.Solutions/applications/x"
    missing = await http.get(app_id, headers=bearer(standin))
    assert (missing.status_code, missing.json()["error"]["code"]) == (400, "MissingApiVersionParameter")
    body = application_body()
    del body["plan"]
    invalid = await http.put(app_id, params=API, json=body, headers=bearer(standin))
    assert invalid.status_code == 400


@pytest.mark.parametrize("tenant", ["common", "organizations", CUSTOMER_TENANT])
async def test_v2_metadata_and_key_issuer_templating(
    standin: RunningStandin, http: httpx.AsyncClient, tenant: str
) -> None:
    metadata = (await http.get(f"/{tenant}/v2.0/.well-known/openid-configuration")).json()
    expected_tenant = CUSTOMER_TENANT if tenant == CUSTOMER_TENANT else "{tenantid}"
    assert metadata["issuer"] == f"{standin.base_url}/{expected_tenant}/v2.0"
    assert metadata["jwks_uri"] == f"{standin.base_url}/{tenant}/discovery/v2.0/keys"
    assert metadata["id_token_signing_alg_values_supported"] == ["RS256"]
    assert metadata["token_endpoint"] == f"{standin.base_url}/{tenant}/oauth2/v2.0/token"

    keys = (await http.get(metadata["jwks_uri"])).json()["keys"]
    assert keys and all(key["issuer"] == metadata["issuer"] for key in keys)
    assert {"kty", "use", "kid", "x5t", "n", "e", "x5c"} <= set(keys[0])


async def test_v1_metadata_and_keys(standin: RunningStandin, http: httpx.AsyncClient) -> None:
    metadata = (await http.get(f"/{CUSTOMER_TENANT}/.well-known/openid-configuration")).json()
    assert metadata["issuer"] == f"{standin.base_url}/sts/{CUSTOMER_TENANT}/"
    assert metadata["jwks_uri"] == f"{standin.base_url}/common/discovery/keys"
    keys = (await http.get(metadata["jwks_uri"])).json()["keys"]
    assert all("issuer" not in key for key in keys)
    assert (await http.get("/not-a-tenant/.well-known/openid-configuration")).status_code == 400


async def test_rotation_keeps_old_key_published_and_signs_with_new(
    standin: RunningStandin, http: httpx.AsyncClient
) -> None:
    before = standin.state.mint_token(tid=CUSTOMER_TENANT, oid="o", aud="api://liutong")
    new_key = standin.state.rotate_signing_key()
    after = standin.state.mint_token(tid=CUSTOMER_TENANT, oid="o", aud="api://liutong")

    kids = {key["kid"] for key in (await http.get("/common/discovery/v2.0/keys")).json()["keys"]}
    assert jwt.get_unverified_header(before)["kid"] in kids
    assert jwt.get_unverified_header(after)["kid"] == new_key.kid
    assert new_key.kid in kids


def test_mint_token_only_adds_mirid_for_microsoft_audiences(standin: RunningStandin) -> None:
    def claims(aud: str) -> dict[str, Any]:
        token = standin.state.mint_token(
            tid=CUSTOMER_TENANT, oid="o", aud=aud, xms_mirid="/subscriptions/s/x"
        )
        return dict(jwt.decode(token, options={"verify_signature": False}))

    assert claims("https://vault.azure.net")["xms_mirid"] == "/subscriptions/s/x"
    assert claims("https://management.azure.com/.default")["aud"] == "https://management.azure.com"
    assert "xms_mirid" not in claims("api://liutong")
    v2 = jwt.decode(
        standin.state.mint_token(tid=CUSTOMER_TENANT, oid="o", aud="cid", ver="2.0"),
        options={"verify_signature": False},
    )
    assert v2["iss"] == f"{standin.base_url}/{CUSTOMER_TENANT}/v2.0"
