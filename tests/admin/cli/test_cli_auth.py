"""Signing in: device code (operator, and a user without the role), client credentials, logout, exit codes."""

from __future__ import annotations

import json
import stat

import pytest

from localdev.stack import ADMIN_AUTOMATION_CLIENT_ID, LocalStack
from localdev.standin import OPERATOR_UPN, USER_UPN
from tests.admin.cli.conftest import Cli

pytestmark = pytest.mark.e2e


def cached_secrets(cli: Cli) -> list[str]:
    """Every token msal keeps (access, refresh, ID tokens): none may ever be printed."""
    cache = json.loads(cli.cache.read_text())
    return [entry["secret"] for kind in ("AccessToken", "RefreshToken", "IdToken") for entry in cache[kind].values()]


def test_not_signed_in_exits_3(cli: Cli) -> None:
    result = cli("teams", "list")
    assert result.code == 3
    assert "Not signed in" in result.err and "python -m admin login" in result.err


def test_device_code_login_caches_tokens_privately_and_logout_forgets_them(cli: Cli) -> None:
    login = cli.login_as(OPERATOR_UPN)
    assert login.code == 0, login.err
    assert "/devicelogin and enter the code" in login.err and f"Signed in as {OPERATOR_UPN}" in login.err
    assert stat.S_IMODE(cli.cache.stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.cache.parent.stat().st_mode) == 0o700

    whoami = cli("whoami", "--json")
    assert [a["username"] for a in whoami.json()["data"]] == [OPERATOR_UPN]
    listing = cli("teams", "list", "--json")
    assert listing.code == 0 and listing.json()["object"] == "list"
    secrets = cached_secrets(cli)
    assert len(secrets) >= 3
    for printed in (login.out, login.err, whoami.out, listing.out, listing.err):
        assert not any(secret in printed for secret in secrets)

    assert cli("logout").code == 0
    assert not cli.cache.exists()
    assert cli("teams", "list").code == 3


def test_a_signed_in_user_without_the_admin_role_exits_3(cli: Cli) -> None:
    assert cli.login_as(USER_UPN).code == 0
    refused = cli("teams", "list")
    assert refused.code == 3
    assert "admin role is required" in refused.err


def test_client_credentials_for_automation(cli: Cli, stack: LocalStack) -> None:
    secret = {"LIUTONG_ADMIN_CLIENT_SECRET": stack.admin_automation_secret}
    listing = cli("--client-id", ADMIN_AUTOMATION_CLIENT_ID, "teams", "list", "--json", environ=secret)
    assert listing.code == 0, listing.err
    assert listing.json()["object"] == "list"
    assert stat.S_IMODE(cli.cache.stat().st_mode) == 0o600

    wrong = cli("--client-id", ADMIN_AUTOMATION_CLIENT_ID, "--client-secret", "not-the-secret", "login")
    assert wrong.code == 3
    assert "AADSTS7000215" in wrong.err and "not-the-secret" not in wrong.err


def test_service_unreachable_exits_4(cli: Cli, stack: LocalStack) -> None:
    secret = {"LIUTONG_ADMIN_CLIENT_SECRET": stack.admin_automation_secret}
    result = cli("--url", "http://127.0.0.1:9", "--client-id", ADMIN_AUTOMATION_CLIENT_ID, "teams", "list",
                 environ=secret)
    assert result.code == 4
    assert "Cannot reach the admin API" in result.err


@pytest.mark.parametrize(
    "argv", [("frobnicate",), ("teams",), ("teams", "create", "no-plan-given"), ("usage", "--granularity", "week")]
)
def test_bad_usage_exits_2(cli: Cli, argv: tuple[str, ...]) -> None:
    assert cli(*argv).code == 2


def test_missing_sign_in_settings_exit_2(cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> None:
    empty = tmp_path_factory.mktemp("empty") / "profile.json"
    result = cli("login", "--profile", str(empty))
    assert result.code == 2
    assert "--tenant" in result.err


def test_a_missing_ca_bundle_exits_2_naming_it(cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> None:
    gone = tmp_path_factory.mktemp("ca") / "cert.pem"
    result = cli("--ca-bundle", str(gone), "teams", "list")
    assert result.code == 2
    assert str(gone) in result.err and "Traceback" not in result.err
