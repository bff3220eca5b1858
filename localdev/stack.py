"""The whole service on loopback with its real parts: Azurite, the Azure stand-in, the service.

Used by `make run` (service in the foreground), `make demo`, the end-to-end tests and the benchmark.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from core.settings import Settings
from limits.plans import PlanCatalog
from localdev import azurite, mock_upstream
from localdev.keyvault_standin import KeyVaultStandIn
from localdev.server import UVICORN_OPTIONS, build_app
from localdev.standin import OPERATOR_UPN, RunningStandin, start_in_thread

HOST = "127.0.0.1"
API_APP_ID_URI = "api://liutong-local"
API_CLIENT_ID = "6c1f0a0e-5d7b-4f4e-9d55-4c8c0f1a7e21"
# The admin API's app registration (v2 tokens), the public client the `liutong-admin` CLI signs in with,
# and an automation app holding the admin role for `--client-secret` use.
ADMIN_APP_ID_URI = "api://liutong-admin-local"
ADMIN_CLIENT_ID = "3d0c6f52-8a41-4f0e-b7c2-5e9a1d4b2c70"
ADMIN_ROLE = "Liutong.Admin"
ADMIN_CLI_CLIENT_ID = "8b2e4a19-0c7d-4e35-a6f1-2d9c3b5e7f04"
ADMIN_AUTOMATION_CLIENT_ID = "c5a7e913-4b2d-4f68-9e0a-7d1f3c6b8a25"
# Variables that would make azure-identity pick another managed-identity host than App Service's.
_COMPETING_IDENTITY_VARS = ("MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT", "IDENTITY_SERVER_THUMBPRINT")


@dataclass
class Ports:
    service: int = 7071
    standin: int = 7072
    standin_tls: int = 7073  # the same stand-in over HTTPS, for msal (the admin CLI)
    upstream: int = 0  # any free port: only the service talks to it
    azurite: int = 10002

    @classmethod
    def free(cls) -> Ports:
        return cls(
            service=azurite.free_port(), standin=azurite.free_port(), standin_tls=azurite.free_port(),
            upstream=azurite.free_port(), azurite=azurite.free_port(),
        )


@dataclass
class LocalStack:
    ports: Ports = field(default_factory=Ports)
    webhook_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    master_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    admin_automation_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    setting_overrides: dict[str, Any] = field(default_factory=dict)
    azurite_location: str | None = None  # None: in memory; a folder: data survives an Azurite restart
    # None: fresh keys each start; a folder: the stand-in's signing key and TLS certificate survive a restart.
    standin_state_dir: Path | None = None
    azurite_process: subprocess.Popen[bytes] | None = None
    standin: RunningStandin | None = None
    upstream: mock_upstream.RunningMockUpstream | None = None
    vault: KeyVaultStandIn | None = None  # customers' own provider keys (BYOK), over HTTPS as Key Vault is
    upstreams_file: str | None = None
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def service_url(self) -> str:
        return f"http://{HOST}:{self.ports.service}"

    def start_dependencies(self) -> Settings:
        """Start Azurite and the stand-in, point this process's identity at the stand-in."""
        self.azurite_process = azurite.start_azurite(HOST, self.ports.azurite, location=self.azurite_location)
        # Polls every second: nobody should wait Entra's 5 s after approving a local sign-in.
        self.standin = start_in_thread(
            HOST, self.ports.standin, tls_port=self.ports.standin_tls, device_code_interval_seconds=1,
            state_dir=self.standin_state_dir,
        )
        self.configure_admin()
        self.vault = KeyVaultStandIn(host=HOST)
        self.vault.start()
        for name in _COMPETING_IDENTITY_VARS:
            os.environ.pop(name, None)
        os.environ.update(self.standin.environ())
        if not os.environ.get("LIUTONG_UPSTREAMS_FILE"):
            self.upstream = mock_upstream.start_in_thread(HOST, self.ports.upstream)
            self.upstreams_file = write_mock_upstreams(
                self.upstream.base_url, self.setting_overrides.get("plans_file")
            )
        return self.settings()

    def configure_admin(self) -> None:
        """The admin API's app registration, its CLI and automation clients, and the operator's role."""
        assert self.standin is not None
        state = self.standin.state
        tenant = state.config.publisher_tenant_id
        state.directory.expose_api(app_id_uri=ADMIN_APP_ID_URI, client_id=ADMIN_CLIENT_ID, v2=True)
        state.directory.register_public_client(
            client_id=ADMIN_CLI_CLIENT_ID, tenant_id=tenant, name="liutong-admin CLI"
        )
        state.register_app_registration(
            client_id=ADMIN_AUTOMATION_CLIENT_ID, secret=self.admin_automation_secret, tenant_id=tenant
        )
        state.grant_app_role(ADMIN_AUTOMATION_CLIENT_ID, resource=ADMIN_APP_ID_URI, role=ADMIN_ROLE)
        state.grant_user_app_role(OPERATOR_UPN, resource=ADMIN_APP_ID_URI, role=ADMIN_ROLE)

    def admin_profile(self) -> dict[str, str]:
        """What the `liutong-admin` CLI needs to sign in here (no secrets)."""
        assert self.standin is not None and self.standin.https_url is not None
        return {
            "url": self.service_url,
            "authority": self.standin.https_url,
            "tenant": self.standin.state.config.publisher_tenant_id,
            "client_id": ADMIN_CLI_CLIENT_ID,
            "scope": f"{ADMIN_APP_ID_URI}/user_impersonation",
            "ca_bundle": str(self.standin.ca_path),
        }

    def settings(self) -> Settings:
        assert self.standin is not None
        values: dict[str, Any] = {
            "storage_connection_string": azurite.connection_string(HOST, self.ports.azurite),
            "webhook_secret": self.webhook_secret,
            "master_secret": self.master_secret,
            "key_vault_url": None,
            "entra_authority": self.standin.base_url,
            "entra_v1_issuer_host": f"{self.standin.base_url}/sts",
            "arm_endpoint": self.standin.base_url,
            "api_app_id_uri": API_APP_ID_URI,
            "api_client_id": API_CLIENT_ID,
            "managed_identity_client_id": None,
            "admin_tenant_id": self.standin.state.config.publisher_tenant_id,
            "admin_app_id_uri": ADMIN_APP_ID_URI,
            "admin_client_id": ADMIN_CLIENT_ID,
            "admin_role": ADMIN_ROLE,
        }
        if self.vault is not None:
            values["byok_vault_url"] = self.vault.url
            values["byok_vault_ca_bundle"] = str(self.vault.ca_path)
        if self.upstreams_file is not None:
            values["upstreams_file"] = self.upstreams_file
        values["metering_endpoint"] = self.standin.base_url
        values.update(self.setting_overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    def start(self) -> Settings:
        """Everything, with the service in a background thread (demo, tests, benchmark)."""
        settings = self.start_dependencies()
        config = uvicorn.Config(
            build_app(settings), host=HOST, port=self.ports.service, log_level="warning", **UVICORN_OPTIONS
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="liutong-service", daemon=True)
        self._thread.start()
        azurite.wait_for_port(HOST, self.ports.service)
        return settings

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        if self.upstream is not None:
            self.upstream.stop()
        if self.vault is not None:
            self.vault.stop()
        if self.standin is not None:
            self.standin.stop()
        if self.azurite_process is not None:
            azurite.stop(self.azurite_process)

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# What an alias of the configured upstreams file says about its model (auto mode, lifecycle): kept locally.
_FACTS = ("created", "capabilities", "context_tokens", "max_output_tokens")
_LIFECYCLE = ("deprecated_at", "sunset_at", "replacement", "immediate")


def _model_facts(upstreams_file: str, aliases: set[str]) -> dict[str, dict[str, Any]]:
    models = json.loads(Path(upstreams_file).read_text(encoding="utf-8"))["models"]
    facts: dict[str, dict[str, Any]] = {}
    for alias, entry in models.items():
        if alias in aliases:
            kept = _FACTS + (_LIFECYCLE if entry.get("replacement", alias) in aliases else ())
            facts[alias] = {name: entry[name] for name in kept if name in entry}
    return facts


def write_mock_upstreams(base_url: str, plans_file: str | None = None) -> str:
    """Every model alias the plans name (those of `plans_file`, else the configured ones), served by the
    local mock upstream."""
    settings = Settings()
    plans = PlanCatalog.load(plans_file or settings.plans_file)
    aliases = sorted({m for plan in plans.plans for m in plan.models})
    facts = _model_facts(settings.upstreams_file, set(aliases))
    config = {"models": {
        a: {"kind": "openai", "base_url": f"{base_url}/v1", "model": a, **facts.get(a, {})} for a in aliases
    }}
    directory = Path(tempfile.mkdtemp(prefix="liutong-local-"))
    path = directory / "upstreams.json"
    path.write_text(json.dumps(config, indent=2))
    return str(path)
