"""Delegated (user) tokens as Entra issues them to public clients: an access token with `scp` (and
`roles` when the user holds app roles), an ID token, `client_info` and a refresh token.

msal's PublicClientApplication builds its account from `client_info` and the ID token and redeems
the refresh token in `acquire_token_silent`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from localdev.standin.aad_errors import Refused, missing, unknown_client
from localdev.standin.directory import TENANT_ALIASES, User
from localdev.standin.identities import stable_guid
from localdev.standin.signing import b64url
from localdev.standin.state import StandinState

OIDC_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
GRAPH = "https://graph.microsoft.com"
_DEFAULT = ".default"


@dataclass(frozen=True)
class Scopes:
    """One resource's requested scopes, plus the OpenID Connect ones."""

    resource: str
    names: tuple[str, ...]  # what `scp` lists
    oidc: frozenset[str]

    @property
    def granted(self) -> str:
        """The response's `scope`: full scope strings for APIs, bare names for Microsoft Graph."""
        if self.resource == GRAPH:
            return " ".join(self.names)
        return " ".join(f"{self.resource}/{name}" for name in self.names)


def _split(scope: str) -> tuple[str, str]:
    resource, slash, name = scope.rpartition("/")
    return (resource, name) if slash else (GRAPH, scope)


def parse_scopes(state: StandinState, raw: str) -> Scopes:
    requested = raw.split()
    if not requested:
        raise missing("scope")
    oidc = frozenset(s for s in requested if s in OIDC_SCOPES)
    pairs = [_split(s) for s in requested if s not in OIDC_SCOPES] or [(GRAPH, "User.Read")]
    resources = {resource.rstrip("/").lower() for resource, _ in pairs}
    if len(resources) > 1:
        raise Refused(
            400, "invalid_scope", 28000,
            f"Provided value for the input parameter scope is not valid because it contains more than one "
            f"resource. Scope {raw} is not valid.",
        )
    resource = pairs[0][0].rstrip("/")
    api = state.directory.api(resource)
    names: list[str] = []
    for _, name in pairs:
        exposed = api.scopes if api else ("user_impersonation",)
        if name == _DEFAULT:
            names.extend(exposed)
        elif api is not None and name not in api.scopes:
            raise Refused(
                400, "invalid_scope", 70011,
                f"The provided value for the input parameter 'scope' is not valid. The scope {resource}/{name} "
                "does not exist.",
            )
        else:
            names.append(name)
    return Scopes(resource=resource, names=tuple(dict.fromkeys(names)), oidc=oidc)


def _base_claims(state: StandinState, user: User, aud: str, *, v2: bool, lifetime: int) -> dict[str, Any]:
    now = int(time.time())
    return {
        "aud": aud,
        "iss": state.v2_issuer(user.tenant_id) if v2 else state.v1_issuer(user.tenant_id),
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "name": user.name,
        "oid": user.oid,
        "tid": user.tenant_id,
        "uti": b64url(uuid.uuid4().bytes)[:22],
    }


def access_token(state: StandinState, user: User, client_id: str, scopes: Scopes) -> str:
    v2_client_id = state.v2_client_id(scopes.resource)
    v2 = v2_client_id is not None
    claims = _base_claims(
        state, user, v2_client_id or scopes.resource, v2=v2, lifetime=state.config.token_lifetime_seconds
    )
    # Public clients authenticate with nothing: appidacr/azpacr 0. No `idtyp` for users (as Entra by default).
    if v2:
        claims |= {"azp": client_id, "azpacr": "0", "preferred_username": user.upn, "ver": "2.0"}
    else:
        claims |= {"appid": client_id, "appidacr": "0", "upn": user.upn, "unique_name": user.upn, "ver": "1.0"}
    claims |= {"amr": ["pwd"], "scp": " ".join(scopes.names), "sub": stable_guid("sub", user.oid, client_id)}
    roles = state.directory.app_roles(user.oid, scopes.resource)
    if roles:
        claims["roles"] = list(roles)
    return state.keys.sign(claims, include_x5t=not v2)


def id_token(state: StandinState, user: User, client_id: str) -> str:
    claims = _base_claims(state, user, client_id, v2=True, lifetime=state.config.token_lifetime_seconds)
    claims |= {"preferred_username": user.upn, "sub": stable_guid("sub", user.oid, client_id), "ver": "2.0"}
    return state.keys.sign(claims, include_x5t=False)


def client_info(user: User) -> str:
    return b64url(json.dumps({"uid": user.oid, "utid": user.tenant_id}, separators=(",", ":")).encode())


def token_response(
    state: StandinState, *, user: User, client_id: str, scopes: Scopes, form: Mapping[str, str]
) -> dict[str, Any]:
    expires_in = state.config.token_lifetime_seconds - 1
    body: dict[str, Any] = {
        "token_type": "Bearer",
        "scope": scopes.granted,
        "expires_in": expires_in,
        "ext_expires_in": expires_in,
        "access_token": access_token(state, user, client_id, scopes),
    }
    if "offline_access" in scopes.oidc:
        body["refresh_token"] = state.sign_ins.issue_refresh_token(user_oid=user.oid, client_id=client_id)
    if "openid" in scopes.oidc:
        body["id_token"] = id_token(state, user, client_id)
    if form.get("client_info") == "1":
        body["client_info"] = client_info(user)
    return body


def public_client_id(state: StandinState, tenant: str, form: Mapping[str, str]) -> str:
    """The calling public client; confidential apps must authenticate, as Entra demands."""
    client_id = form.get("client_id", "")
    if not client_id:
        raise missing("client_id")
    if state.directory.public_client(client_id, tenant) is not None:
        return client_id
    if state.app_registrations.find(client_id, tenant) is not None:
        raise Refused(
            401, "invalid_client", 7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )
    raise unknown_client(client_id, tenant)


def user_may_sign_in(user: User, tenant: str) -> bool:
    return tenant.lower() in TENANT_ALIASES or user.tenant_id.lower() == tenant.lower()


def refresh_token_grant(state: StandinState, tenant: str, form: Mapping[str, str]) -> dict[str, Any]:
    token = form.get("refresh_token", "")
    if not token:
        raise missing("refresh_token")
    client_id = public_client_id(state, tenant, form)
    grant = state.sign_ins.refresh_grant(token)
    user = state.directory.user(grant.user_oid) if grant else None
    if grant is None or user is None or not user_may_sign_in(user, tenant):
        raise Refused(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
    if grant.client_id.lower() != client_id.lower():
        raise Refused(400, "invalid_grant", 70000, "Provided grant is invalid or malformed.")
    scopes = parse_scopes(state, form.get("scope", "") or "openid profile offline_access")
    return token_response(state, user=user, client_id=client_id, scopes=scopes, form=form)
