"""`liutong-admin teams byok set|list|remove` against the local stack: the key comes from stdin, never argv."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator

import pytest

from admin.cli.main import main
from localdev.stack import LocalStack
from tests.admin.cli.conftest import Cli, Result

pytestmark = pytest.mark.e2e
MODEL = "gpt-4o-mini"
TEAM_KEY = "sk-byok-cli-" + uuid.uuid4().hex


def run(operator: Cli, *argv: str, stdin: str = "") -> Result:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), environ=operator.environ, stdin=io.StringIO(stdin), stdout=out, stderr=err)
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def provider_checks_the_key(stack: LocalStack) -> Iterator[None]:
    assert stack.upstream is not None
    stack.upstream.config.required_keys = {MODEL: TEAM_KEY}
    try:
        yield
    finally:
        stack.upstream.config.required_keys = {}


def test_set_list_remove(operator: Cli, provider_checks_the_key: None) -> None:
    team = f"cli-byok-{uuid.uuid4().hex[:8]}"
    assert operator("teams", "create", team, "--plan", "prepaid").code == 0

    empty = run(operator, "teams", "byok", "set", team, MODEL)
    assert empty.code == 2 and "standard input" in empty.err
    wrong = run(operator, "teams", "byok", "set", team, MODEL, stdin="sk-not-the-teams-key-000\n")
    assert wrong.code == 1 and "refused this credential" in wrong.err

    registered = run(operator, "teams", "byok", "set", team, MODEL, "--json", stdin=TEAM_KEY + "\n")
    assert registered.code == 0, registered.err
    assert registered.json()["last4"] == TEAM_KEY[-4:] and TEAM_KEY not in registered.out

    listed = run(operator, "teams", "byok", "list", team)
    assert listed.code == 0 and MODEL in listed.out and TEAM_KEY[-4:] in listed.out
    assert TEAM_KEY[:-4] not in listed.out

    removed = run(operator, "teams", "byok", "remove", team, MODEL, "--json")
    assert removed.code == 0 and removed.json()["deleted"] is True
    again = run(operator, "teams", "byok", "remove", team, MODEL)
    assert again.code == 1


def test_the_key_is_not_an_argument(operator: Cli) -> None:
    assert run(operator, "teams", "byok", "set", "some-team", MODEL, TEAM_KEY).code == 2
