"""GET /api/admin/models and /api/admin/models/callers: lifecycle per alias, and who still calls deprecated ones."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from admin import model_handlers
from core.tables import Tables
from proxy.upstreams import UpstreamsConfig
from tests.admin.conftest import Clock, assert_invalid_request, auth_header
from tests.admin.test_auth import BAD_CREDENTIALS
from tests.admin.usage_seed import write
from usage.records import UsageRecord

NOW = datetime(2026, 11, 22, 10, 30, tzinfo=UTC)
OPENAI = {"kind": "openai", "base_url": "https://api.example.com/v1"}
CONFIG = UpstreamsConfig.model_validate({"models": {
    "old": {**OPENAI, "model": "old-model", "deprecated_at": "2026-11-01T00:00:00Z",
            "sunset_at": "2026-12-15T00:00:00Z", "replacement": "new"},
    "new": {**OPENAI, "model": "new-model", "capabilities": ["chat", "tools"], "context_tokens": 1000},
    "later": {**OPENAI, "model": "later-model", "deprecated_at": "2027-01-01T00:00:00Z"},
}})


def call(at: datetime, model: str, *, team: str = "team-a", deployment: str | None = None, tokens: int = 10,
         index: int = 0) -> UsageRecord:
    return UsageRecord(
        request_id=f"req-{uuid.uuid4().hex}-{index}", at=at, team=team, key_id="k1", plan_id="standard",
        model_alias=model, endpoint="/v1/chat/completions", status=200, latency_ms=5, prompt_tokens=tokens,
        cached_tokens=0, completion_tokens=0, total_tokens=tokens, plan_tokens=tokens, estimated=False,
        deployment_id=deployment,
    )


@pytest.fixture
async def seeded(tables: Tables, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    clock.now = NOW

    async def config() -> UpstreamsConfig:
        return CONFIG

    monkeypatch.setattr(model_handlers, "upstreams_config", config)
    await write(tables, [
        call(NOW - timedelta(days=1), "old", deployment="dep-1", tokens=7),
        call(NOW - timedelta(days=2), "old", deployment="dep-1", tokens=5, index=1),
        call(NOW - timedelta(days=3), "old", deployment="dep-1", tokens=1, index=2),
        call(NOW - timedelta(hours=2), "old", team="team-b", tokens=3),
        call(NOW - timedelta(days=9), "old", team="team-c"),  # outside the default 7 days
        call(NOW - timedelta(hours=1), "new", team="team-d"),
        call(NOW - timedelta(hours=1), "later", team="team-e"),  # not deprecated yet: not listed
    ])


async def test_models_list_lifecycle_and_the_callers_of_deprecated_aliases(
    client: httpx.AsyncClient, seeded: None
) -> None:
    response = await client.get("/api/admin/models", headers=auth_header())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["to"] == "2026-11-22T11:00:00+00:00" and body["from"] == "2026-11-15T11:00:00+00:00"
    models = {m["id"]: m for m in body["data"]}
    assert [models[a]["status"] for a in ("old", "new", "later")] == ["deprecated", "active", "active"]
    old = models["old"]
    assert (old["deprecated_at"], old["sunset_at"], old["replacement"]) == (
        "2026-11-01T00:00:00+00:00", "2026-12-15T00:00:00+00:00", "new")
    assert old["callers"] == [
        {"owner": "dep-dep-1", "deployment_id": "dep-1", "team": "team-a", "requests": 3, "total_tokens": 13,
         "last_day": "2026-11-21T00:00:00+00:00"},
        {"owner": "team-team-b", "deployment_id": None, "team": "team-b", "requests": 1, "total_tokens": 3,
         "last_day": "2026-11-22T00:00:00+00:00"},
    ]
    assert models["new"]["callers"] is None and models["later"]["callers"] is None
    assert models["new"]["capabilities"] == ["chat", "tools"] and models["new"]["context_tokens"] == 1000
    assert models["new"]["upstream_model"] == "new-model"


async def test_a_longer_window_and_past_the_sunset(client: httpx.AsyncClient, seeded: None, clock: Clock) -> None:
    response = await client.get("/api/admin/models", params={"days": "10"}, headers=auth_header())
    old = {m["id"]: m for m in response.json()["data"]}["old"]
    assert [c["owner"] for c in old["callers"]] == ["dep-dep-1", "team-team-b", "team-team-c"]
    clock.now = datetime(2026, 12, 16, tzinfo=UTC)
    response = await client.get("/api/admin/models", params={"days": "40"}, headers=auth_header())
    old = {m["id"]: m for m in response.json()["data"]}["old"]
    assert old["status"] == "sunset" and len(old["callers"]) == 3


async def test_callers_of_any_alias(client: httpx.AsyncClient, seeded: None) -> None:
    response = await client.get("/api/admin/models/callers", params={"model": "new"}, headers=auth_header())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "new" and [c["owner"] for c in body["data"]] == ["team-team-d"]
    gone = await client.get("/api/admin/models/callers", params={"model": "removed"}, headers=auth_header())
    assert gone.json()["data"] == []


@pytest.mark.parametrize(
    ("path", "params", "param"),
    [
        ("/api/admin/models", {"days": "0"}, "days"),
        ("/api/admin/models", {"days": "94"}, "days"),
        ("/api/admin/models", {"days": "seven"}, "days"),
        ("/api/admin/models/callers", {}, "model"),
        ("/api/admin/models/callers", {"model": "bad alias!"}, "model"),
        ("/api/admin/models/callers", {"model": "old", "days": "-1"}, "days"),
    ],
)
async def test_bad_parameters_are_400(
    client: httpx.AsyncClient, seeded: None, path: str, params: dict[str, str], param: str
) -> None:
    assert_invalid_request(await client.get(path, params=params, headers=auth_header()), param=param)


async def test_operators_only(client: httpx.AsyncClient, seeded: None) -> None:
    for label, (headers, status) in BAD_CREDENTIALS.items():
        for path in ("/api/admin/models", "/api/admin/models/callers?model=old"):
            response = await client.get(path, headers=headers)
            assert response.status_code == status, (label, path)
