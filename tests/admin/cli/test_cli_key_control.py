"""`keys rotate --no-grace`, `deployments rotate --no-grace` and `deployments suspend|resume` from the CLI."""

from __future__ import annotations

import uuid

import pytest

from tests.admin.cli.conftest import Cli

pytestmark = pytest.mark.e2e


def test_keys_rotate_no_grace_revokes_the_old_key(operator: Cli) -> None:
    team = f"cli-{uuid.uuid4().hex[:10]}"
    assert operator("teams", "create", team, "--plan", "starter").code == 0
    leaked = operator("keys", "mint", team, "--json").json()
    rotated = operator("keys", "rotate", team, leaked["key_id"], "--no-grace", "--json")
    assert rotated.code == 0, rotated.err
    assert rotated.json()["previous"]["status"] == "revoked" and rotated.json()["key"] != leaked["key"]
    statuses = {k["key_id"]: k["status"] for k in operator("keys", "list", team, "--json").json()["data"]}
    assert statuses == {leaked["key_id"]: "revoked", rotated.json()["key_id"]: "active"}


def test_no_grace_and_grace_hours_are_exclusive(operator: Cli) -> None:
    both = operator("keys", "rotate", "some-team", "key1", "--no-grace", "--grace-hours", "2")
    assert both.code == 2  # argparse refuses the pair before anything is sent


def test_deployments_rotate_no_grace_sends_revoke_previous(operator: Cli) -> None:
    # No deployment with this id exists: the API's 404 shows the option was accepted and the body parsed.
    missing = operator("deployments", "rotate", "0" * 64, "--no-grace", "--reason", "leaked", "--json")
    assert missing.code == 1 and "No such deployment" in missing.err


@pytest.mark.parametrize("action", ["suspend", "resume"])
def test_deployments_suspend_and_resume_reach_the_api(operator: Cli, action: str) -> None:
    missing = operator("deployments", action, "0" * 64, "--reason", "unpaid", "--json")
    assert missing.code == 1 and "No such deployment" in missing.err
