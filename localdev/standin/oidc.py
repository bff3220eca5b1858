"""Entra's OpenID Connect metadata (v1 and v2) and signing-key documents, for any tenant."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from localdev.standin.state import GUID, StandinState

# Multi-tenant aliases: their metadata carries the `{tenantid}` template instead of a tenant.
_ALIASES = ("common", "organizations", "consumers")
_TEMPLATE = "{tenantid}"
_CLAIMS_SUPPORTED = ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce", "tid", "ver", "oid"]


def _tenant_error(tenant: str) -> Response:
    return JSONResponse(
        {
            "error": "invalid_tenant",
            "error_description": f"AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the "
            "correct tenant ID and are signing into the correct cloud.",
            "error_codes": [90002],
        },
        status_code=400,
    )


def _known_tenant(tenant: str) -> bool:
    return tenant.lower() in _ALIASES or GUID.match(tenant) is not None


def _issuer_tenant(tenant: str) -> str:
    return _TEMPLATE if tenant.lower() in _ALIASES else tenant


def _common_fields(base: str, tenant: str) -> dict[str, Any]:
    return {
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "claims_supported": _CLAIMS_SUPPORTED,
        "kerberos_endpoint": f"{base}/{tenant}/kerberos",
        "tenant_region_scope": None if tenant.lower() in _ALIASES else "WW",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }


# `base` is the listener the client came in on (the stand-in may serve HTTP and HTTPS); issuers never change.
def v1_metadata(state: StandinState, tenant: str, base: str | None = None) -> dict[str, Any]:
    base = base or state.base_url
    return {
        "token_endpoint": f"{base}/{tenant}/oauth2/token",
        "jwks_uri": f"{base}/common/discovery/keys",
        "issuer": state.v1_issuer(_issuer_tenant(tenant)),
        "authorization_endpoint": f"{base}/{tenant}/oauth2/authorize",
        "device_authorization_endpoint": f"{base}/{tenant}/oauth2/devicecode",
        "end_session_endpoint": f"{base}/{tenant}/oauth2/logout",
        "check_session_iframe": f"{base}/{tenant}/oauth2/checksession",
        "userinfo_endpoint": f"{base}/{tenant}/openid/userinfo",
        "scopes_supported": ["openid"],
        "microsoft_multi_refresh_token": True,
        **_common_fields(base, tenant),
    }


def v2_metadata(state: StandinState, tenant: str, base: str | None = None) -> dict[str, Any]:
    base = base or state.base_url
    return {
        "token_endpoint": f"{base}/{tenant}/oauth2/v2.0/token",
        "jwks_uri": f"{base}/{tenant}/discovery/v2.0/keys",
        "issuer": state.v2_issuer(_issuer_tenant(tenant)),
        "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/devicecode",
        "end_session_endpoint": f"{base}/{tenant}/oauth2/v2.0/logout",
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "request_uri_parameter_supported": False,
        **_common_fields(base, tenant),
    }


def routes(state: StandinState) -> list[Route]:
    async def metadata_v1(request: Request) -> Response:
        tenant = request.path_params["tenant"]
        if not _known_tenant(tenant):
            return _tenant_error(tenant)
        return JSONResponse(v1_metadata(state, tenant, state.endpoint_base(request.url.scheme)))

    async def metadata_v2(request: Request) -> Response:
        tenant = request.path_params["tenant"]
        if not _known_tenant(tenant):
            return _tenant_error(tenant)
        return JSONResponse(v2_metadata(state, tenant, state.endpoint_base(request.url.scheme)))

    async def keys_v1(request: Request) -> Response:
        tenant = request.path_params["tenant"]
        if not _known_tenant(tenant):
            return _tenant_error(tenant)
        return JSONResponse(state.keys.jwks(issuer=None))

    async def keys_v2(request: Request) -> Response:
        # Entra's v2 keys name the issuers allowed to use them; multi-tenant documents use the template.
        tenant = request.path_params["tenant"]
        if not _known_tenant(tenant):
            return _tenant_error(tenant)
        return JSONResponse(state.keys.jwks(issuer=state.v2_issuer(_issuer_tenant(tenant))))

    return [
        Route("/{tenant}/.well-known/openid-configuration", metadata_v1),
        Route("/{tenant}/v2.0/.well-known/openid-configuration", metadata_v2),
        Route("/{tenant}/discovery/keys", keys_v1),
        Route("/{tenant}/discovery/v2.0/keys", keys_v2),
    ]
