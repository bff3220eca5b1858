"""A tiny HTTPS Key Vault (secrets) stand-in that the real azure-keyvault-secrets client can talk to.

It speaks the wire protocol the SDK needs: a 401 bearer challenge on an unauthenticated request,
then `GET /secrets/{name}[/{version}]?api-version=...` with a bearer token. TLS uses a
self-signed certificate for 127.0.0.1/localhost; pass `ca_path` as the client's `connection_verify=`
and `verify_challenge_resource=False` (the host is not *.vault.azure.net).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

RESOURCE = "https://vault.azure.net"
DEFAULT_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def write_self_signed_cert(directory: Path, *, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """Writes cert.pem and key.pem for `host`, localhost and 127.0.0.1; returns their paths."""
    cert_pem, key_pem = self_signed_pem(host=host)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert_pem)
    key_path.write_bytes(key_pem)
    return cert_path, key_path


def self_signed_pem(*, host: str = "127.0.0.1", days: int = 2) -> tuple[bytes, bytes]:
    """A self-signed server certificate for `host`, localhost and 127.0.0.1, and its key (both PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "liutong key vault stand-in")])
    now = dt.datetime.now(dt.UTC)
    alt_names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    if host not in ("127.0.0.1", "localhost"):
        alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@dataclass
class _Version:
    value: str
    enabled: bool = True
    created: int = field(default_factory=lambda: int(time.time()))


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
        with self._lock:
            self._secrets.pop(name, None)

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

    async def _get_secret(self, request: Request) -> JSONResponse:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return self._challenge()
        self.tokens_seen.append(token)
        if not request.query_params.get("api-version"):
            return _error(400, "BadParameter", "The api-version query parameter is required.")
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
        return JSONResponse(
            {
                "value": entry.value,
                "id": f"{self.url}/secrets/{name}/{version_id}",
                "attributes": {
                    "enabled": True,
                    "created": entry.created,
                    "updated": entry.created,
                    "recoveryLevel": "Recoverable+Purgeable",
                    "recoverableDays": 90,
                },
                "tags": {},
            }
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/secrets/{name}", self._get_secret, methods=["GET"]),
                Route("/secrets/{name}/", self._get_secret, methods=["GET"]),
                Route("/secrets/{name}/{version}", self._get_secret, methods=["GET"]),
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
