"""Entra's directory as far as sign-ins need it: users, public clients, the APIs apps expose and
app-role assignments (to users and to service principals alike, keyed by their object ID)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from localdev.standin.identities import stable_guid

TENANT_ALIASES = ("common", "organizations", "consumers")
OPERATOR_UPN = "operator@liutong.local"
USER_UPN = "user@liutong.local"


@dataclass(frozen=True)
class User:
    oid: str
    tenant_id: str
    upn: str
    name: str


@dataclass(frozen=True)
class PublicClient:
    """An app registration with "allow public client flows": device code, no secret."""

    client_id: str
    tenant_id: str
    name: str


@dataclass(frozen=True)
class ExposedApi:
    """An app registration that exposes delegated scopes (`api://…/user_impersonation`)."""

    app_id_uri: str
    client_id: str
    scopes: tuple[str, ...]
    # accessTokenAcceptedVersion = 2: its tokens are v2 with `aud` = its client ID.
    v2: bool

    def is_named_by(self, resource: str) -> bool:
        return _norm(resource) in (_norm(self.app_id_uri), _norm(self.client_id))


def _norm(resource: str) -> str:
    return resource.rstrip("/").lower()


class Directory:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: dict[str, User] = {}
        self._clients: dict[str, PublicClient] = {}
        self._apis: list[ExposedApi] = []
        self._roles: dict[tuple[str, str], set[str]] = {}

    # -- users ----------------------------------------------------------------------------------------

    def add_user(self, *, upn: str, name: str, tenant_id: str, oid: str | None = None) -> User:
        user = User(oid=(oid or stable_guid("user", upn.lower())).lower(), tenant_id=tenant_id, upn=upn, name=name)
        with self._lock:
            self._users[user.oid] = user
        return user

    def user(self, oid_or_upn: str) -> User | None:
        wanted = oid_or_upn.strip().lower()
        with self._lock:
            return self._users.get(wanted) or next((u for u in self._users.values() if u.upn.lower() == wanted), None)

    def users(self) -> list[User]:
        with self._lock:
            return sorted(self._users.values(), key=lambda u: u.upn.lower())

    # -- public clients -------------------------------------------------------------------------------

    def register_public_client(self, *, client_id: str, tenant_id: str, name: str = "public client") -> PublicClient:
        client = PublicClient(client_id=client_id, tenant_id=tenant_id, name=name)
        with self._lock:
            self._clients[client_id.lower()] = client
        return client

    def public_client(self, client_id: str, tenant: str) -> PublicClient | None:
        """The client, if it can sign users in at `tenant` (its home tenant, or a multi-tenant alias)."""
        with self._lock:
            client = self._clients.get(client_id.strip().lower())
        if client is None or (tenant.lower() not in TENANT_ALIASES and client.tenant_id.lower() != tenant.lower()):
            return None
        return client

    # -- exposed APIs and app roles -------------------------------------------------------------------

    def expose_api(
        self, *, app_id_uri: str, client_id: str, scopes: tuple[str, ...] = ("user_impersonation",), v2: bool = False
    ) -> ExposedApi:
        api = ExposedApi(app_id_uri=app_id_uri, client_id=client_id, scopes=scopes, v2=v2)
        with self._lock:
            self._apis = [a for a in self._apis if not a.is_named_by(client_id)] + [api]
        return api

    def api(self, resource: str) -> ExposedApi | None:
        with self._lock:
            return next((a for a in self._apis if a.is_named_by(resource)), None)

    def _resource_key(self, resource: str) -> str:
        api = self.api(resource)
        return _norm(api.client_id if api else resource)

    def assign_app_role(self, principal_oid: str, *, resource: str, role: str) -> None:
        key = (principal_oid.lower(), self._resource_key(resource))
        with self._lock:
            self._roles.setdefault(key, set()).add(role)

    def app_roles(self, principal_oid: str, resource: str) -> tuple[str, ...]:
        key = (principal_oid.lower(), self._resource_key(resource))
        with self._lock:
            return tuple(sorted(self._roles.get(key, ())))


def seed_users(directory: Directory, tenant_id: str) -> None:
    """Two people of the publisher's tenant; whoever configures an API grants the operator its role."""
    directory.add_user(upn=OPERATOR_UPN, name="Local Operator", tenant_id=tenant_id)
    directory.add_user(upn=USER_UPN, name="Local User", tenant_id=tenant_id)
