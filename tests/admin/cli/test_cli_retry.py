"""The admin API client drops a token the API refuses as stale and tries once more with a new one.

A fake admin API (httpx.MockTransport) that accepts only the bearer tokens it is told to; no sign-in."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from admin.cli.api import AdminApi
from admin.cli.errors import AUTH, ApiError


class FakeAdmin:
    def __init__(self, accepted: set[str], refusal: tuple[int, str] = (401, "unknown_signing_key")) -> None:
        self.accepted = accepted
        self.refusal = refusal
        self.seen: list[tuple[str, bytes]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        bearer = request.headers["authorization"].removeprefix("Bearer ")
        self.seen.append((bearer, request.read()))
        if bearer in self.accepted:
            return httpx.Response(200, json={"object": "list", "data": [], "has_more": False})
        status, code = self.refusal
        body = {"error": {"message": code.replace("_", " "), "type": "authentication_error", "code": code}}
        return httpx.Response(status, json=body)


class Tokens:
    """The cached token first; each renewal hands out the next one."""

    def __init__(self, cached: str, *fresh: str) -> None:
        self.cached, self.fresh = cached, list(fresh)
        self.renewals = 0

    def token(self) -> str:
        return self.cached

    def renew(self) -> str:
        self.renewals += 1
        return self.fresh.pop(0)


def api_for(admin: FakeAdmin, tokens: Tokens) -> AdminApi:
    return AdminApi("http://admin.test", tokens.token, renew=tokens.renew, transport=httpx.MockTransport(admin))


@pytest.mark.parametrize("code", ["unknown_signing_key", "invalid_signature", "token_expired", "invalid_issuer"])
def test_a_stale_token_is_renewed_once_and_the_request_sent_again(code: str) -> None:
    admin, tokens = FakeAdmin({"fresh"}, (401, code)), Tokens("stale", "fresh")
    api = api_for(admin, tokens)
    assert api.call("POST", "/api/admin/teams", body={"team": "a"})["object"] == "list"
    assert tokens.renewals == 1
    assert [bearer for bearer, _ in admin.seen] == ["stale", "fresh"]
    assert admin.seen[0][1] == admin.seen[1][1] == b'{"team":"a"}'
    api.call("GET", "/api/admin/teams")  # the new token is kept for the rest of the command
    assert tokens.renewals == 1 and admin.seen[-1][0] == "fresh"


def test_a_renewed_token_refused_again_gives_up_with_the_api_error() -> None:
    admin, tokens = FakeAdmin(set()), Tokens("stale", "also-stale", "never-asked")
    api = api_for(admin, tokens)
    with pytest.raises(ApiError) as raised:
        api.call("GET", "/api/admin/teams")
    assert raised.value.exit_code == AUTH and "sign in again" in raised.value.message
    assert tokens.renewals == 1 and len(admin.seen) == 2
    with pytest.raises(ApiError):  # once per command, not once per request
        api.call("GET", "/api/admin/teams")
    assert tokens.renewals == 1


@pytest.mark.parametrize(
    ("status", "code"),
    [(403, "missing_role"), (403, "tenant_not_allowed"), (401, "missing_token"), (401, "invalid_audience"),
     (404, "not_found")],
)
def test_other_refusals_are_not_retried(status: int, code: str) -> None:
    admin, tokens = FakeAdmin({"fresh"}, (status, code)), Tokens("cached", "fresh")
    with pytest.raises(ApiError) as raised:
        api_for(admin, tokens).call("GET", "/api/admin/teams")
    assert raised.value.code == code
    assert tokens.renewals == 0 and len(admin.seen) == 1


def test_without_a_way_to_renew_the_refusal_stands() -> None:
    admin = FakeAdmin({"fresh"})
    api = AdminApi("http://admin.test", lambda: "stale", transport=httpx.MockTransport(admin))
    with pytest.raises(ApiError) as raised:
        api.call("GET", "/api/admin/teams")
    assert raised.value.code == "unknown_signing_key" and len(admin.seen) == 1


def test_a_download_is_renewed_too(tmp_path: Path) -> None:
    admin, tokens = FakeAdmin({"fresh"}), Tokens("stale", "fresh")
    destination = tmp_path / "usage.csv"
    size = api_for(admin, tokens).download("/api/admin/usage", {"format": "csv"}, destination, lambda *_: None)
    assert size == destination.stat().st_size > 0
    assert [bearer for bearer, _ in admin.seen] == ["stale", "fresh"]
    assert not destination.with_name("usage.csv.part").exists()
