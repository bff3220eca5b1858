"""The CLI run in-process (main(argv)) against the session `stack`, signed in through its Entra stand-in."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from admin.cli.config import save_profile
from admin.cli.main import main
from localdev.stack import LocalStack
from localdev.standin import OPERATOR_UPN, approve_device_code


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def approve_next_sign_in(stack: LocalStack, user: str, timeout: float = 15) -> None:
    """What the person at the verification page does, as soon as the CLI shows its code."""
    assert stack.standin is not None
    state = stack.standin.state
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = state.sign_ins.pending()
        if pending:
            approve_device_code(state, pending[0].user_code, user)
            return
        time.sleep(0.02)


class Cli:
    def __init__(self, stack: LocalStack, home: Path) -> None:
        self.stack = stack
        self.profile = home / "config" / "profile.json"
        self.cache = home / "cache" / "token_cache.json"
        save_profile(self.profile, stack.admin_profile(), local=True)
        self.environ = {
            "HOME": str(home), "LIUTONG_ADMIN_PROFILE": str(self.profile), "LIUTONG_ADMIN_TOKEN_CACHE": str(self.cache)
        }

    def __call__(self, *argv: str, environ: dict[str, str] | None = None) -> Result:
        out, err = io.StringIO(), io.StringIO()
        code = main(list(argv), environ=self.environ | (environ or {}), stdin=io.StringIO(), stdout=out, stderr=err)
        return Result(code, out.getvalue(), err.getvalue())

    def login_as(self, user: str) -> Result:
        approver = threading.Thread(target=approve_next_sign_in, args=(self.stack, user), daemon=True)
        approver.start()
        result = self("login")
        approver.join()
        return result


@pytest.fixture
def cli(stack: LocalStack, tmp_path: Path) -> Cli:
    return Cli(stack, tmp_path)


@pytest.fixture(scope="module")
def operator(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """Signed in once per module as the seeded operator (who holds Liutong.Admin)."""
    signed_in = Cli(stack, tmp_path_factory.mktemp("operator"))
    result = signed_in.login_as(OPERATOR_UPN)
    assert result.code == 0, result.err
    yield signed_in
