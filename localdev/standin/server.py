"""Run the stand-in under uvicorn, in the foreground or in a daemon thread (tests, local tools)."""

from __future__ import annotations

import dataclasses
import socket
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from localdev.keyvault_standin import write_self_signed_cert
from localdev.standin import persisted
from localdev.standin.app import create_app
from localdev.standin.msi import PATH as MSI_PATH
from localdev.standin.signing import KeyRing
from localdev.standin.state import StandinConfig, StandinState


def bind(host: str, port: int) -> socket.socket:
    """Bound before uvicorn starts so that port 0 yields a known base URL (token issuers contain it).

    IPPROTO_TCP must be explicit: asyncio sets TCP_NODELAY only when the proto says TCP, else each
    response waits for a delayed ACK (~40 ms)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def base_url_of(sock: socket.socket, scheme: str = "http") -> str:
    host, port = sock.getsockname()[:2]
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def build_config(config: StandinConfig | None, overrides: dict[str, Any]) -> StandinConfig:
    return dataclasses.replace(config or StandinConfig(), **overrides)


def make_server(state: StandinState, tls: tuple[Path, Path] | None = None) -> uvicorn.Server:
    """`tls` is (certificate, key) PEM files; None serves plain HTTP."""
    app = create_app(state)
    ssl: dict[str, Any] = {"ssl_certfile": str(tls[0]), "ssl_keyfile": str(tls[1])} if tls else {}
    return uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False, **ssl))


class RunningStandin:
    def __init__(
        self,
        state: StandinState,
        server: uvicorn.Server,
        thread: threading.Thread,
        tls_dir: tempfile.TemporaryDirectory[str] | None = None,
        ca_path: Path | None = None,
    ) -> None:
        self.state = state
        self._servers = [(server, thread)]
        self._tls_dir = tls_dir
        self._ca_path = ca_path

    def serve_also(self, server: uvicorn.Server, sock: socket.socket, *, name: str, startup_timeout: float) -> None:
        """Another listener (e.g. HTTPS beside HTTP) for the same state, stopped with the rest."""
        self._servers.append((server, serve_in_thread(server, sock, name=name, startup_timeout=startup_timeout)))

    @property
    def ca_path(self) -> Path | None:
        """The self-signed certificate to trust (e.g. msal's `verify=`) when served over HTTPS."""
        return self._ca_path

    @property
    def base_url(self) -> str:
        return self.state.base_url

    @property
    def https_url(self) -> str | None:
        """An https authority for msal: the base URL itself, or the extra TLS listener's."""
        return self.base_url if self.base_url.startswith("https:") else self.state.tls_base_url

    @property
    def identity_header(self) -> str:
        return self.state.config.identity_header

    @property
    def msi_endpoint(self) -> str:
        return f"{self.base_url}{MSI_PATH}"

    def environ(self) -> dict[str, str]:
        """The env vars azure-identity's ManagedIdentityCredential needs to use this stand-in."""
        return {"IDENTITY_ENDPOINT": self.msi_endpoint, "IDENTITY_HEADER": self.identity_header}

    def stop(self, timeout: float = 10.0) -> None:
        for server, _ in self._servers:
            server.should_exit = True
            # An idle TLS keep-alive connection waits for its peer's close_notify, which a pooled client
            # never sends: uvicorn would wait for it until the client closes its pool.
            server.force_exit = server.config.ssl_certfile is not None
        for _, thread in self._servers:
            thread.join(timeout)
        if self._tls_dir is not None:
            self._tls_dir.cleanup()

    def __enter__(self) -> RunningStandin:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


def start_in_thread(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    config: StandinConfig | None = None,
    tls: bool = False,
    tls_port: int | None = None,
    startup_timeout: float = 10.0,
    state_dir: Path | None = None,
    **overrides: Any,
) -> RunningStandin:
    """Serve on host:port (0 = any free port) and return once it accepts connections.

    `overrides` are StandinConfig fields, e.g. identity_header="x", service_client_id="...".
    With `tls`, serves HTTPS with a fresh self-signed certificate (`ca_path`): msal refuses http authorities.
    With `tls_port` (0 = any free port), serves plain HTTP on `port` (issuers, the service's JWKS, ARM) and
    the same state over HTTPS on `tls_port` too (`https_url`), for msal.
    With `state_dir`, the signing key and the TLS certificate are those kept there (localdev.standin.persisted),
    so tokens and the CA file of an earlier run stay good; without, both are fresh and forgotten on stop.
    """
    keys = KeyRing(persisted.signing_key(state_dir)) if state_dir is not None else None
    sock = bind(host, port)
    try:
        tls_sock = bind(host, tls_port) if tls_port is not None and not tls else None
    except OSError:
        sock.close()
        raise
    tls_dir, cert_and_key = _tls_files(host, state_dir) if tls or tls_sock else (None, None)
    state = StandinState(base_url_of(sock, "https" if tls else "http"), build_config(config, overrides), keys)
    server = make_server(state, cert_and_key if tls else None)
    try:
        thread = serve_in_thread(server, sock, name="azure-standin", startup_timeout=startup_timeout)
    except RuntimeError:
        if tls_dir is not None:
            tls_dir.cleanup()
        raise
    running = RunningStandin(state, server, thread, tls_dir, cert_and_key[0] if cert_and_key else None)
    if tls_sock is not None:
        state.tls_base_url = base_url_of(tls_sock, "https")
        tls_server = make_server(state, cert_and_key)
        try:
            running.serve_also(tls_server, tls_sock, name="azure-standin-tls", startup_timeout=startup_timeout)
        except RuntimeError:
            running.stop()
            raise
    return running


def _tls_files(
    host: str, state_dir: Path | None
) -> tuple[tempfile.TemporaryDirectory[str] | None, tuple[Path, Path]]:
    """(a temporary folder to remove on stop, or None when kept in `state_dir`; (certificate, key) files)."""
    if state_dir is not None:
        return None, persisted.tls_files(state_dir, host=host)
    tls_dir = tempfile.TemporaryDirectory(prefix="standin-tls-")
    return tls_dir, write_self_signed_cert(Path(tls_dir.name), host=host)


def serve_in_thread(
    server: uvicorn.Server, sock: socket.socket, *, name: str, startup_timeout: float
) -> threading.Thread:
    """Run `server` on the bound `sock` in a daemon thread; return once it accepts connections."""
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"{name} did not start on {base_url_of(sock)}")
        time.sleep(0.01)
    return thread
