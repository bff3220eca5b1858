"""The CLI's key and account control: rotation without grace, deployment suspension, limit overrides."""

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


def test_teams_limits_sets_shows_and_clears_an_override(operator: Cli) -> None:
    team = f"cli-{uuid.uuid4().hex[:10]}"
    assert operator("teams", "create", team, "--plan", "starter").code == 0
    assert operator("teams", "limits", team).code == 2  # nothing to set
    set_ = operator("teams", "limits", team, "--rpm", "5", "--models", "gpt-4o-mini", "--reason", "trial", "--json")
    assert set_.code == 0, set_.err
    assert (set_.json()["rpm"], set_.json()["models"]) == (5, ["gpt-4o-mini"])
    assert operator("teams", "show", team, "--json").json()["limits"]["rpm"] == 5
    bad = operator("teams", "limits", team, "--rpm", "-3")
    assert bad.code == 1 and "rpm" in bad.err
    cleared = operator("teams", "limits", team, "--clear", "--json")
    assert cleared.code == 0 and cleared.json()["cleared"] is True
    assert operator("teams", "show", team, "--json").json()["limits"] is None


def test_deployments_limits_reaches_the_api(operator: Cli) -> None:
    missing = operator("deployments", "limits", "0" * 64, "--tpm", "1000")
    assert missing.code == 1 and "No such deployment" in missing.err
