"""Run the stand-in under uvicorn, in the foreground or in a daemon thread (tests, local tools)."""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from localdev.standin.app import create_app
from localdev.standin.msi import PATH as MSI_PATH
from localdev.standin.state import StandinConfig, StandinState


def bind(host: str, port: int) -> socket.socket:
    """Bound before uvicorn starts so that port 0 yields a known base URL (token issuers contain it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def base_url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def build_config(config: StandinConfig | None, overrides: dict[str, Any]) -> StandinConfig:
    return dataclasses.replace(config or StandinConfig(), **overrides)


def make_server(state: StandinState) -> uvicorn.Server:
    app = create_app(state)
    return uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))


class RunningStandin:
    def __init__(self, state: StandinState, server: uvicorn.Server, thread: threading.Thread) -> None:
        self.state = state
        self._server = server
        self._thread = thread

    @property
    def base_url(self) -> str:
        return self.state.base_url

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
        self._server.should_exit = True
        self._thread.join(timeout)

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
    startup_timeout: float = 10.0,
    **overrides: Any,
) -> RunningStandin:
    """Serve on host:port (0 = any free port) and return once it accepts connections.

    `overrides` are StandinConfig fields, e.g. identity_header="x", service_client_id="...".
    """
    sock = bind(host, port)
    state = StandinState(base_url_of(sock), build_config(config, overrides))
    server = make_server(state)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="azure-standin", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"the Azure stand-in did not start on {state.base_url}")
        time.sleep(0.02)
    return RunningStandin(state, server, thread)
