"""App registrations (confidential clients) the stand-in's Entra token endpoint knows about."""

from __future__ import annotations

import hmac
import threading
from dataclasses import dataclass

from localdev.standin.identities import stable_guid


@dataclass(frozen=True)
class AppRegistration:
    client_id: str
    tenant_id: str
    # The object ID of the app's service principal in its home tenant: the `oid` of its app-only tokens.
    object_id: str
    secret: str

    def accepts(self, presented: str) -> bool:
        return hmac.compare_digest(presented.encode(), self.secret.encode())


class AppRegistrations:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_client_id: dict[str, AppRegistration] = {}

    def register(self, *, client_id: str, secret: str, tenant_id: str, object_id: str | None = None) -> AppRegistration:
        """Adds (or replaces) an app registration; its service principal's object ID is stable by default."""
        app = AppRegistration(
            client_id=client_id,
            tenant_id=tenant_id,
            object_id=object_id or stable_guid("service-principal-of", client_id, tenant_id),
            secret=secret,
        )
        with self._lock:
            self._by_client_id[client_id.lower()] = app
        return app

    def get(self, client_id: str) -> AppRegistration | None:
        with self._lock:
            return self._by_client_id.get(client_id.strip().lower())

    def find(self, client_id: str, tenant: str) -> AppRegistration | None:
        """The app, if it has a service principal in `tenant` (single-tenant: its home tenant only)."""
        app = self.get(client_id)
        if app is None or app.tenant_id.lower() != tenant.lower():
            return None
        return app
