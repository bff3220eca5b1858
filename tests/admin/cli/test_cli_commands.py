"""The CLI's commands against the whole local service, signed in as the operator; a minted key is used
through the proxy with the openai SDK."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from localdev.stack import LocalStack
from tests.admin.cli.conftest import Cli

pytestmark = pytest.mark.e2e
MODEL = "gpt-4o-mini"  # in the starter plan


def new_team(operator: Cli, plan: str = "starter") -> str:
    name = f"cli-{uuid.uuid4().hex[:10]}"
    created = operator("teams", "create", name, "--plan", plan, "--description", "from the CLI tests", "--json")
    assert created.code == 0, created.err
    assert (created.json()["team"], created.json()["plan_id"]) == (name, plan)
    return name


def chat(stack: LocalStack, key: str) -> str | None:
    api = openai.OpenAI(base_url=f"{stack.service_url}/v1", api_key=key, max_retries=0)
    answer = api.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hello"}])
    return answer.choices[0].message.content


def eventually(check: Any, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_team_key_lifecycle_with_the_openai_sdk(operator: Cli, stack: LocalStack, tmp_path: Path) -> None:
    team = new_team(operator)
    minted = operator("keys", "mint", team, "--description", "sdk test")
    assert minted.code == 0, minted.err
    [key_line] = [line for line in minted.out.splitlines() if line.startswith("key: ")]
    key = key_line.removeprefix("key: ")
    assert key.startswith("lt-") and minted.out.count(key) == 1 and key not in minted.err
    assert "shown once" in minted.err
    assert key not in operator.cache.read_text()

    assert chat(stack, key)
    [listed] = operator("keys", "list", team, "--json").json()["data"]
    assert "key" not in listed and key.startswith(listed["prefix"]) and listed["status"] == "active"

    def used() -> dict[str, Any]:
        report = operator("usage", "--team", team, "--group-by", "team,model", "--json").json()
        assert report["totals"]["requests"] >= 1
        return report

    assert eventually(used)["data"][0]["model_alias"] == MODEL
    csv_file = tmp_path / "usage.csv"
    downloaded = operator("usage", "--team", team, "--csv", str(csv_file))
    assert downloaded.code == 0 and f"Wrote {csv_file}" in downloaded.err
    header, row = csv_file.read_text().splitlines()[:2]
    assert header.startswith("period,plan_id,model_alias,requests") and ",starter,gpt-4o-mini,1," in row

    revoked = operator("keys", "revoke", team, listed["key_id"], "--json")
    assert revoked.code == 0 and revoked.json()["status"] == "revoked"

    def refused() -> None:
        try:
            chat(stack, key)
        except openai.AuthenticationError:
            return
        raise AssertionError("the revoked key still works")

    eventually(refused)


def test_missing_things_exit_1_with_the_api_message(operator: Cli) -> None:
    missing = operator("teams", "show", "no-such-team")
    assert (missing.code, missing.out) == (1, "")
    assert "No such team." in missing.err
    team = new_team(operator)
    assert "No such key" in operator("keys", "revoke", team, "key-0000").err
    assert operator("deployments", "show", "not-an-id").code == 1


def test_lists_follow_continuation_tokens(operator: Cli) -> None:
    names = {new_team(operator) for _ in range(3)}
    first = operator("teams", "list", "--limit", "1", "--json").json()
    assert len(first["data"]) == 1 and first["has_more"] and first["continuation_token"]
    human = operator("teams", "list", "--limit", "1")
    assert "More results: pass --all" in human.err
    everything = operator("teams", "list", "--limit", "1", "--all", "--json").json()
    assert not everything["has_more"] and names <= {t["team"] for t in everything["data"]}


def test_update_suspend_resume_rotate_and_revoke_all(operator: Cli) -> None:
    team = new_team(operator)
    assert operator("teams", "update", team, "--description", "renamed", "--json").json()["description"] == "renamed"
    assert operator("teams", "suspend", team, "--json").json()["status"] == "suspended"
    assert operator("keys", "mint", team).code == 1
    assert operator("teams", "resume", team, "--json").json()["status"] == "active"

    first = operator("keys", "mint", team, "--json").json()
    rotated = operator("keys", "rotate", team, first["key_id"], "--grace-hours", "1", "--json")
    assert rotated.code == 0 and rotated.json()["key"] != first["key"]
    assert rotated.json()["previous"]["status"] == "rotating-out"

    assert operator("keys", "revoke-all", team).code == 2  # no terminal to confirm on
    revoked = operator("keys", "revoke-all", team, "--yes", "--json").json()
    assert set(revoked["revoked_key_ids"]) == {first["key_id"], rotated.json()["key_id"]}
    statuses = {k["status"] for k in operator("keys", "list", team, "--json").json()["data"]}
    assert statuses == {"revoked"}


def test_reports_parse_as_json(operator: Cli) -> None:
    team = new_team(operator)
    audit = operator("audit", "--action", "admin.team.create", "--all", "--json")
    assert audit.code == 0, audit.err
    assert f"team/{team}" in {event["resource_id"] for event in audit.json()["data"]}
    for argv in (("deployments", "list"), ("ledger",), ("usage",)):
        result = operator(*argv, "--json")
        assert result.code == 0, result.err
        assert isinstance(result.json()["data"], list)


def test_ui_url_carries_the_token_in_the_fragment_only(operator: Cli, stack: LocalStack) -> None:
    result = operator("ui", "--print-url")
    assert result.code == 0 and "holds your access token" in result.err
    page, _, fragment = result.out.strip().partition("#")
    assert page == f"{stack.service_url}/api/admin/ui" and fragment.startswith("access_token=ey")
    assert httpx.get(page).status_code == 200
