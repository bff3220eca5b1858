"""A tiny HTTPS Key Vault (secrets) stand-in that the real azure-keyvault-secrets client can talk to.

It speaks the wire protocol the SDK needs: a 401 bearer challenge on an unauthenticated request,
then, with a bearer token and `?api-version=`: `GET /secrets/{name}[/{version}]`, `PUT /secrets/{name}` (a new
version), `DELETE /secrets/{name}` (soft delete, done at once), `GET /deletedsecrets/{name}` (what the SDK's delete
poller asks) and `DELETE /deletedsecrets/{name}` (purge); a deleted name cannot be set again until purged. TLS uses a
self-signed certificate for 127.0.0.1/localhost; pass `ca_path` as the client's `connection_verify=`
and `verify_challenge_resource=False` (the host is not *.vault.azure.net).
"""

from __future__ import annotations

import re
import socket
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from localdev.tls import self_signed_pem, write_self_signed_cert

__all__ = ["KeyVaultStandIn", "self_signed_pem", "write_self_signed_cert"]

RESOURCE = "https://vault.azure.net"
DEFAULT_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
SECRET_NAME = re.compile(r"[0-9A-Za-z-]{1,127}")


@dataclass
class _Version:
    value: str
    enabled: bool = True
    created: int = field(default_factory=lambda: int(time.time()))
    tags: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None


def _error(status: int, code: str, message: str, inner: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if inner is not None:
        body["innererror"] = {"code": inner}
    return JSONResponse({"error": body}, status_code=status)


class KeyVaultStandIn:
    """Serve with `with KeyVaultStandIn() as vault:`; `vault.url`, `vault.ca_path`."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tenant_id: str = DEFAULT_TENANT,
        authority: str = "https://login.microsoftonline.com",
    ) -> None:
        self.host = host
        self.tenant_id = tenant_id
        self.authority = authority.rstrip("/")
        self._secrets: dict[str, list[tuple[str, _Version]]] = {}
        # Soft-deleted secrets (DELETE /secrets/{name}) by name: when, and their versions.
        self.deleted: dict[str, tuple[int, list[tuple[str, _Version]]]] = {}
        self._lock = threading.Lock()
        self.tokens_seen: list[str] = []
        self.challenges_sent = 0
        self._tempdir = tempfile.TemporaryDirectory(prefix="kv-standin-")
        self.ca_path, self._key_path = write_self_signed_cert(Path(self._tempdir.name), host=host)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.port = int(self._socket.getsockname()[1])
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    # --- Python API: what an operator would do in the portal or with `az keyvault secret` ---

    def set_secret(self, name: str, value: str) -> str:
        """Adds a new version, which becomes the latest; returns its version id."""
        version = uuid.uuid4().hex
        with self._lock:
            self._secrets.setdefault(name, []).append((version, _Version(value)))
        return version

    def set_enabled(self, name: str, version: str, enabled: bool) -> None:
        with self._lock:
            self._find(name, version).enabled = enabled

    def disable(self, name: str, version: str) -> None:
        self.set_enabled(name, version, False)

    def delete_secret(self, name: str) -> None:
        """Gone at once, not soft-deleted: a secret that never existed, as far as clients can tell."""
        with self._lock:
            self._secrets.pop(name, None)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._secrets)

    def values(self) -> list[str]:
        """Every value held, deleted ones included (tests look for where a secret went)."""
        with self._lock:
            held = [*self._secrets.values(), *(versions for _, versions in self.deleted.values())]
            return [entry.value for versions in held for _, entry in versions]

    def _find(self, name: str, version: str | None) -> _Version:
        versions = self._secrets.get(name)
        if not versions:
            raise KeyError(name)
        if version is None:
            return versions[-1][1]
        for candidate, entry in versions:
            if candidate == version:
                return entry
        raise KeyError(version)

    # --- HTTP ---

    def _challenge(self) -> JSONResponse:
        self.challenges_sent += 1
        header = f'Bearer authorization="{self.authority}/{self.tenant_id}", resource="{RESOURCE}"'
        response = _error(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")
        response.headers["WWW-Authenticate"] = header
        return response

    def _refusal(self, request: Request) -> JSONResponse | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return self._challenge()
        self.tokens_seen.append(token)
        if not request.query_params.get("api-version"):
            return _error(400, "BadParameter", "The api-version query parameter is required.")
        return None

    def _bundle(self, name: str, version_id: str, entry: _Version, *, value: bool = True) -> dict[str, Any]:
        bundle: dict[str, Any] = {
            "id": f"{self.url}/secrets/{name}/{version_id}",
            "attributes": {
                "enabled": entry.enabled, "created": entry.created, "updated": entry.created,
                "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90,
            },
            "tags": entry.tags,
        }
        if entry.content_type is not None:
            bundle["contentType"] = entry.content_type
        if value:
            bundle["value"] = entry.value
        return bundle

    async def _get_secret(self, request: Request) -> JSONResponse:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        name = request.path_params["name"]
        version = request.path_params.get("version") or None
        with self._lock:
            versions = self._secrets.get(name, [])
            found = [(v, e) for v, e in versions if version is None or v == version][-1:]
        if not found:
            return _error(404, "SecretNotFound", f"A secret with (name/id) {name}/{version} was not found.")
        version_id, entry = found[0]
        if not entry.enabled:
            message = "Operation get is not allowed on a disabled secret."
            return _error(403, "Forbidden", message, "SecretDisabled")
        return JSONResponse(self._bundle(name, version_id, entry))

    async def _set_secret(self, request: Request) -> JSONResponse:
        """PUT /secrets/{name}: a new version, or 409 while a deleted secret of that name awaits purge."""
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        name = request.path_params["name"]
        try:
            doc = await request.json()
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or not isinstance(doc.get("value"), str):
            return _error(400, "BadParameter", "The request body must carry the secret's value.")
        if not SECRET_NAME.fullmatch(name):
            return _error(400, "BadParameter", "Secret names are 1-127 characters of 0-9, a-z, A-Z and '-'.")
        entry = _Version(doc["value"], tags=dict(doc.get("tags") or {}), content_type=doc.get("contentType"))
        version = uuid.uuid4().hex
        with self._lock:
            if name in self.deleted:
                message = (f"Secret {name} is currently in a deleted but recoverable state, and its name cannot be "
                           "reused; in this state, the secret can only be recovered or purged.")
                return _error(409, "Conflict", message, "ObjectIsDeletedButRecoverable")
            self._secrets.setdefault(name, []).append((version, entry))
        return JSONResponse(self._bundle(name, version, entry))

    async def _delete_secret(self, request: Request) -> JSONResponse:
        """DELETE /secrets/{name}: soft delete (at once, where Key Vault takes a few seconds)."""
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        name = request.path_params["name"]
        with self._lock:
            versions = self._secrets.pop(name, None)
            if versions:
                self.deleted[name] = (int(time.time()), versions)
        if not versions:
            return _error(404, "SecretNotFound", f"A secret with (name/id) {name} was not found.")
        return JSONResponse(self._deleted_bundle(name))

    async def _get_deleted(self, request: Request) -> JSONResponse:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        name = request.path_params["name"]
        with self._lock:
            found = name in self.deleted
        if not found:
            return _error(404, "SecretNotFound", f"Deleted Secret not found: {name}")
        return JSONResponse(self._deleted_bundle(name))

    async def _purge(self, request: Request) -> Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        with self._lock:
            purged = self.deleted.pop(request.path_params["name"], None)
        if purged is None:
            return _error(404, "SecretNotFound", "Deleted Secret not found.")
        return Response(status_code=204)

    def _deleted_bundle(self, name: str) -> dict[str, Any]:
        with self._lock:
            deleted_at, versions = self.deleted[name]
        version_id, entry = versions[-1]
        return {
            **self._bundle(name, version_id, entry, value=False),
            "recoveryId": f"{self.url}/deletedsecrets/{name}",
            "deletedDate": deleted_at, "scheduledPurgeDate": deleted_at + 90 * 86400,
        }

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/secrets/{name}", self._get_secret, methods=["GET"]),
                Route("/secrets/{name}", self._set_secret, methods=["PUT"]),
                Route("/secrets/{name}", self._delete_secret, methods=["DELETE"]),
                Route("/secrets/{name}/", self._get_secret, methods=["GET"]),
                Route("/secrets/{name}/{version}", self._get_secret, methods=["GET"]),
                Route("/deletedsecrets/{name}", self._get_deleted, methods=["GET"]),
                Route("/deletedsecrets/{name}", self._purge, methods=["DELETE"]),
            ]
        )

    def start(self) -> None:
        config = uvicorn.Config(
            self.app(),
            ssl_certfile=str(self.ca_path),
            ssl_keyfile=str(self._key_path),
            log_level="warning",
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="kv-standin", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the Key Vault stand-in did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._socket.close()
        self._tempdir.cleanup()

    def __enter__(self) -> KeyVaultStandIn:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
