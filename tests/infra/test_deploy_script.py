"""scripts/deploy.sh against a fake `az` on PATH that records every call."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.infra.bicep_ast import REPO

SCRIPT = REPO / "scripts" / "deploy.sh"
FAKE_AZ = Path(__file__).with_name("fake_az.py")
VAULT_ID = "/subscriptions/s/resourceGroups/rg-liutong/providers/Microsoft.KeyVault/vaults/kv-abc123"
BASH = shutil.which("bash") or "/bin/bash"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    calls: list[dict[str, Any]]

    def commands(self) -> list[str]:
        """Each call's subcommand words, e.g. 'deployment group create'."""
        words = []
        for call in self.calls:
            argv = call["argv"]
            end = next((i for i, arg in enumerate(argv) if arg.startswith("-")), len(argv))
            words.append(" ".join(argv[:end]))
        return words

    def call(self, command: str) -> list[str]:
        (argv,) = [c["argv"] for c, words in zip(self.calls, self.commands(), strict=True) if words == command]
        return list(argv)

    def secrets_to_create(self, command: str) -> dict[str, str]:
        """What main.bicepparam reads: LIUTONG_CREATE_* in the environment az ran with."""
        (env,) = [c["env"] for c, words in zip(self.calls, self.commands(), strict=True) if words == command]
        return dict(env)


@pytest.fixture
def deploy(tmp_path: Path):  # type: ignore[no-untyped-def]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "az-calls.jsonl"

    def install_fake_az() -> None:
        wrapper = bin_dir / "az"
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_AZ}" "$@"\n')
        wrapper.chmod(0o755)

    def run(*args: str, with_az: bool = True, **env: str) -> Run:
        if with_az:
            install_fake_az()
        environment = {
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "HOME": str(tmp_path),
            "PYTHON": sys.executable,
            "FAKE_AZ_LOG": str(log),
            "LIUTONG_DIST_DIR": str(tmp_path / "dist"),
            "LIUTONG_API_APP_ID_URI": "api://liutong-test",
            "LIUTONG_API_CLIENT_ID": "6c1f0a0e-5d7b-4f4e-9d55-4c8c0f1a7e21",
        }
        environment.update(env)
        for name, value in env.items():
            if value == "<unset>":
                del environment[name]
        completed = subprocess.run(
            [BASH, str(SCRIPT), *args], capture_output=True, text=True, env=environment, cwd=tmp_path,
            timeout=120, check=False,
        )
        calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        log.unlink(missing_ok=True)
        return Run(completed.returncode, completed.stdout, completed.stderr, calls)

    return run


def test_first_deployment_runs_the_commands_in_order_and_generates_both_secrets(deploy) -> None:  # type: ignore[no-untyped-def]
    run = deploy("-g", "rg-liutong")
    assert run.returncode == 0, run.stderr
    assert run.commands() == [
        "account show",
        "group exists",
        "keyvault list",
        "deployment group create",
        "functionapp deployment source config-zip",
    ]
    create = run.call("deployment group create")
    assert create[create.index("--resource-group") + 1] == "rg-liutong"
    assert create[create.index("--template-file") + 1] == str(REPO / "infra/bicep/main.bicep")
    # One --parameters: az accepts no inline overrides next to a .bicepparam file.
    assert [create[i + 1] for i, arg in enumerate(create) if arg == "--parameters"] == [
        str(REPO / "infra/bicep/main.bicepparam")]
    assert run.secrets_to_create("deployment group create") == {
        "LIUTONG_CREATE_MASTER_SECRET": "true", "LIUTONG_CREATE_WEBHOOK_SECRET": "true"}


def test_the_app_package_goes_to_flex_with_a_remote_build(deploy) -> None:  # type: ignore[no-untyped-def]
    run = deploy("-g", "rg-liutong")
    assert run.returncode == 0, run.stderr
    zip_call = run.call("functionapp deployment source config-zip")
    assert zip_call[zip_call.index("--name") + 1] == "func-liutong-abc123"
    assert zip_call[zip_call.index("--resource-group") + 1] == "rg-liutong"
    assert zip_call[zip_call.index("--build-remote") + 1] == "true"
    entries = next(c for c in run.calls if "zip_entries" in c)["zip_entries"]
    assert {"function_app.py", "host.json", "requirements.txt", "routes.py", "services.py"} <= set(entries)
    assert not [e for e in entries if e.startswith(("tests/", ".venv", "infra/", "localdev/", "node_modules/"))]


def test_existing_secrets_are_left_alone(deploy) -> None:  # type: ignore[no-untyped-def]
    run = deploy("-g", "rg-liutong", FAKE_AZ_VAULT_ID=VAULT_ID,
                 FAKE_AZ_SECRETS="liutong-key-master,liutong-webhook-secret")
    assert run.returncode == 0, run.stderr
    assert run.commands()[:5] == ["account show", "group exists", "keyvault list", "resource show", "resource show"]
    assert run.secrets_to_create("deployment group create") == {
        "LIUTONG_CREATE_MASTER_SECRET": "false", "LIUTONG_CREATE_WEBHOOK_SECRET": "false"}


def test_only_the_missing_secret_is_generated(deploy) -> None:  # type: ignore[no-untyped-def]
    run = deploy("-g", "rg-liutong", FAKE_AZ_VAULT_ID=VAULT_ID, FAKE_AZ_SECRETS="liutong-key-master")
    assert run.returncode == 0, run.stderr
    assert run.secrets_to_create("deployment group create") == {
        "LIUTONG_CREATE_MASTER_SECRET": "false", "LIUTONG_CREATE_WEBHOOK_SECRET": "true"}


def test_an_unclear_secret_lookup_stops_rather_than_regenerating(deploy) -> None:  # type: ignore[no-untyped-def]
    run = deploy("-g", "rg-liutong", FAKE_AZ_VAULT_ID=VAULT_ID, FAKE_AZ_SECRETS="liutong-key-master",
                 FAKE_AZ_FAIL="resource show")
    assert run.returncode != 0
    assert "cannot tell whether secret" in run.stderr
    assert "deployment group create" not in run.commands()


def test_what_if_passes_through_and_changes_nothing(deploy) -> None:  # type: ignore[no-untyped-def]
    run = deploy("-g", "rg-liutong", "--what-if")
    assert run.returncode == 0, run.stderr
    assert run.commands() == ["account show", "group exists", "keyvault list", "deployment group what-if"]
    what_if = run.call("deployment group what-if")
    assert what_if[what_if.index("--template-file") + 1] == str(REPO / "infra/bicep/main.bicep")
    assert what_if[what_if.index("--parameters") + 1] == str(REPO / "infra/bicep/main.bicepparam")
    assert run.secrets_to_create("deployment group what-if")["LIUTONG_CREATE_WEBHOOK_SECRET"] == "true"
    assert "(fake)" in run.stdout


def test_partner_center_values_are_printed_without_the_secret(deploy) -> None:  # type: ignore[no-untyped-def]
    run = deploy("-g", "rg-liutong")
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "https://func-liutong-abc123.azurewebsites.net/api/marketplace?sig=<webhook secret>" in out
    assert "11111111-1111-1111-1111-111111111111" in out  # client ID
    assert "22222222-2222-2222-2222-222222222222" in out  # principal ID for the plan's authorizations
    assert "33333333-3333-3333-3333-333333333333" in out  # tenant ID
    assert "az keyvault secret show --vault-name kv-abc123 --name liutong-webhook-secret" in out


def test_not_logged_in_is_a_clear_error_and_nothing_is_deployed(deploy) -> None:  # type: ignore[no-untyped-def]
    run = deploy("-g", "rg-liutong", FAKE_AZ_LOGGED_IN="0")
    assert run.returncode != 0
    assert "not logged in to Azure: run 'az login'" in run.stderr
    assert run.commands() == ["account show"]


def test_missing_az_is_a_clear_error(deploy) -> None:  # type: ignore[no-untyped-def]
    if shutil.which("az", path="/usr/bin:/bin"):
        pytest.skip("a real az is installed in /usr/bin or /bin")
    run = deploy("-g", "rg-liutong", with_az=False)
    assert run.returncode != 0
    assert "the Azure CLI (az) is not on PATH" in run.stderr


def test_missing_operator_settings_are_named_before_any_az_call(deploy) -> None:  # type: ignore[no-untyped-def]
    run = deploy("-g", "rg-liutong", LIUTONG_API_CLIENT_ID="<unset>")
    assert run.returncode != 0
    assert "LIUTONG_API_CLIENT_ID is not set" in run.stderr
    assert run.calls == []


def test_no_resource_group_is_a_clear_error(deploy) -> None:  # type: ignore[no-untyped-def]
    run = deploy()
    assert run.returncode != 0
    assert "no resource group" in run.stderr


def test_a_missing_resource_group_is_created_only_with_a_location(deploy) -> None:  # type: ignore[no-untyped-def]
    refused = deploy("-g", "rg-new", FAKE_AZ_GROUP_EXISTS="false")
    assert refused.returncode != 0
    assert "does not exist" in refused.stderr
    assert "deployment group create" not in refused.commands()

    created = deploy("-g", "rg-new", "-l", "westeurope", FAKE_AZ_GROUP_EXISTS="false")
    assert created.returncode == 0, created.stderr
    group = created.call("group create")
    assert group[group.index("--location") + 1] == "westeurope"
    assert created.commands().index("group create") < created.commands().index("deployment group create")


def test_a_failed_deployment_stops_before_the_code_is_deployed(deploy) -> None:  # type: ignore[no-untyped-def]
    run = deploy("-g", "rg-liutong", FAKE_AZ_FAIL="deployment group create")
    assert run.returncode != 0
    assert "functionapp deployment source config-zip" not in run.commands()


def test_skip_code_deploys_infrastructure_only(deploy) -> None:  # type: ignore[no-untyped-def]
    run = deploy("-g", "rg-liutong", "--skip-code")
    assert run.returncode == 0, run.stderr
    assert run.commands()[-1] == "deployment group create"


def test_code_only_deploys_to_the_app_of_the_last_deployment(deploy) -> None:  # type: ignore[no-untyped-def]
    run = deploy("-g", "rg-liutong", "--code-only", LIUTONG_API_CLIENT_ID="<unset>")
    assert run.returncode == 0, run.stderr
    assert run.commands() == ["account show", "deployment group show", "functionapp deployment source config-zip"]
    show = run.call("deployment group show")
    assert show[show.index("--name") + 1] == "liutong"
    zip_call = run.call("functionapp deployment source config-zip")
    assert zip_call[zip_call.index("--name") + 1] == "func-liutong-abc123"


def test_code_only_without_a_deployment_is_a_clear_error(deploy) -> None:  # type: ignore[no-untyped-def]
    run = deploy("-g", "rg-liutong", "--code-only", FAKE_AZ_DEPLOYED="0")
    assert run.returncode != 0
    assert "deploy the infrastructure first" in run.stderr
    assert "functionapp deployment source config-zip" not in run.commands()


def test_unknown_arguments_are_refused(deploy) -> None:  # type: ignore[no-untyped-def]
    run = deploy("-g", "rg-liutong", "--frobnicate")
    assert run.returncode != 0
    assert "unknown argument: --frobnicate" in run.stderr


def test_the_script_is_executable_and_strict() -> None:
    assert os.access(SCRIPT, os.X_OK)
    assert "set -euo pipefail" in SCRIPT.read_text()
