"""`make run` stopped and started again: the CLI's next command succeeds.

The restarted stacks are whole (Azurite, the stand-in, the service) on the same ports each time, as `make run`
uses them; the session stack is left as it was. With the stand-in's key folder kept, the cached token is
simply still good; without it, the CLI drops the refused token and gets a new one."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import jwt
import pytest

import services
from admin.cli.files import write_private
from localdev.stack import ADMIN_AUTOMATION_CLIENT_ID, LocalStack, Ports
from localdev.standin import OPERATOR_UPN, decline_device_code
from localdev.standin.signing import KeyRing
from tests.admin.cli.conftest import Cli, Result, approve_next_sign_in

pytestmark = pytest.mark.e2e

Restart = Callable[[Path], LocalStack]


@pytest.fixture
def restart() -> Iterator[Restart]:
    """Stops the running stack, if any, and starts a new one with its stand-in's keys in `folder`."""
    saved_env = {name: os.environ.get(name) for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER")}
    saved_services = services._current
    ports = Ports.free()
    running: list[LocalStack] = []

    def start(folder: Path) -> LocalStack:
        while running:
            running.pop().stop()
        stack = LocalStack(ports=ports, standin_state_dir=folder)
        running.append(stack)
        stack.start()
        return stack

    try:
        yield start
    finally:
        while running:
            running.pop().stop()
        services.install(saved_services)
        for name, value in saved_env.items():
            if value is not None:
                os.environ[name] = value


def automation(cli: Cli, stack: LocalStack) -> Result:
    """The walkthrough's automation line, with the secret this run of the stack printed."""
    secret = {"LIUTONG_ADMIN_CLIENT_SECRET": stack.admin_automation_secret}
    return cli("--client-id", ADMIN_AUTOMATION_CLIENT_ID, "teams", "list", "--json", environ=secret)


def cached_access_tokens(cli: Cli) -> list[str]:
    return [entry["secret"] for entry in json.loads(cli.cache.read_text())["AccessToken"].values()]


def refusal(stack: LocalStack, token: str) -> str | None:
    answer = httpx.get(f"{stack.service_url}/api/admin/teams", headers={"authorization": f"Bearer {token}"})
    return answer.json()["error"]["code"] if answer.status_code == 401 else None


def test_the_cli_stays_signed_in_across_a_restart(restart: Restart, tmp_path: Path) -> None:
    folder = tmp_path / "cache" / "liutong-local" / "standin"
    stack = restart(folder)
    cli = Cli(stack, tmp_path / "home")
    assert automation(cli, stack).code == 0
    cached = cached_access_tokens(cli)

    stack = restart(folder)
    # The profile written before the restart (its CA file, its authority) still holds.
    after = automation(cli, stack)
    assert after.code == 0, after.err
    assert after.json()["object"] == "list" and after.err == ""
    assert cached_access_tokens(cli) == cached  # accepted as it was: no new token was needed


def test_a_token_the_restarted_stack_refuses_is_replaced_once(restart: Restart, tmp_path: Path) -> None:
    stack = restart(tmp_path / "first")
    cli = Cli(stack, tmp_path / "home")
    assert automation(cli, stack).code == 0
    [stale] = cached_access_tokens(cli)

    stack = restart(tmp_path / "second")  # as after deleting the key folder: a new signing key
    assert refusal(stack, stale) == "unknown_signing_key"
    cli = Cli(stack, tmp_path / "home")  # `make run` writes the profile again (a new CA file)
    after = automation(cli, stack)
    assert after.code == 0, after.err
    [fresh] = cached_access_tokens(cli)
    assert fresh != stale and refusal(stack, fresh) is None


def test_a_person_whose_token_is_refused_is_asked_to_sign_in_again(stack: LocalStack, tmp_path: Path) -> None:
    cli = Cli(stack, tmp_path)
    assert cli.login_as(OPERATOR_UPN).code == 0
    forge_cached_access_tokens(cli)

    approver = threading.Thread(target=approve_next_sign_in, args=(stack, OPERATOR_UPN), daemon=True)
    approver.start()
    listing = cli("teams", "list", "--json")
    approver.join()
    assert listing.code == 0, listing.err
    assert "refused your cached sign-in: sign in again" in listing.err and "enter the code" in listing.err
    assert all(refusal(stack, token) is None for token in cached_access_tokens(cli))


def test_a_person_who_does_not_sign_in_again_gets_the_refusal(stack: LocalStack, tmp_path: Path) -> None:
    cli = Cli(stack, tmp_path)
    assert cli.login_as(OPERATOR_UPN).code == 0
    forge_cached_access_tokens(cli)
    approver = threading.Thread(target=decline_next_sign_in, args=(stack,), daemon=True)
    approver.start()
    listing = cli("teams", "list")
    approver.join()
    assert listing.code == 3
    assert cached_access_tokens(cli) == []  # the refused token is gone, not tried again next time


def forge_cached_access_tokens(cli: Cli) -> None:
    """The cached tokens' claims, signed by a key the stand-in never published (as a restart without the
    key folder leaves them)."""
    cache = json.loads(cli.cache.read_text())
    foreign = KeyRing()
    for entry in cache["AccessToken"].values():
        entry["secret"] = foreign.sign(jwt.decode(entry["secret"], options={"verify_signature": False}),
                                       include_x5t=False)
    write_private(cli.cache, json.dumps(cache))


def decline_next_sign_in(stack: LocalStack, timeout: float = 15) -> None:
    assert stack.standin is not None
    state = stack.standin.state
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = state.sign_ins.pending()
        if pending:
            decline_device_code(state, pending[0].user_code)
            return
        time.sleep(0.02)
