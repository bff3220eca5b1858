"""Managed identities the stand-in can issue tokens for, and stable GUIDs derived from names."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass

# Fixed so that derived principal/client/tenant IDs are the same in every run.
_NAMESPACE = uuid.UUID("6f1d3a52-9a0b-4c4e-8a51-2f6f3e1c7b90")

# The App Service endpoint's selectors, as sent by azure-identity/MSAL (`object_id` is MSAL's alias).
SELECTORS = ("client_id", "principal_id", "object_id", "mi_res_id")


def stable_guid(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "|".join(part.lower() for part in parts)))


@dataclass(frozen=True)
class ManagedIdentity:
    principal_id: str
    client_id: str
    tenant_id: str
    resource_id: str

    def matches(self, selector: str, value: str) -> bool:
        wanted = value.strip().lower()
        if selector == "client_id":
            return self.client_id.lower() == wanted
        if selector in ("principal_id", "object_id"):
            return self.principal_id.lower() == wanted
        if selector == "mi_res_id":
            return self.resource_id.lower() == wanted
        return False


class IdentityRegistry:
    """Identities selectable on the managed-identity endpoint, grouped by the resource that owns them."""

    def __init__(self, default: ManagedIdentity) -> None:
        self.default = default
        self._lock = threading.Lock()
        self._by_owner: dict[str, list[ManagedIdentity]] = {}

    def register(self, identity: ManagedIdentity, *, owner: str | None = None) -> ManagedIdentity:
        key = (owner or identity.resource_id).lower()
        with self._lock:
            self._by_owner.setdefault(key, []).append(identity)
        return identity

    def unregister_owner(self, owner: str) -> None:
        with self._lock:
            self._by_owner.pop(owner.lower(), None)

    def all(self) -> list[ManagedIdentity]:
        with self._lock:
            registered = [identity for group in self._by_owner.values() for identity in group]
        return [self.default, *registered]

    def find(self, selector: str, value: str) -> ManagedIdentity | None:
        for identity in self.all():
            if identity.matches(selector, value):
                return identity
        return None

    def by_resource_id(self, resource_id: str) -> ManagedIdentity | None:
        return self.find("mi_res_id", resource_id)
