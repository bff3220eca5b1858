"""BYOK through the proxy: a team's own provider key reaches the upstream, the call is recorded byok and not charged."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import openai
import pytest

from limits.plans import Plan
from proxy.byok import ByokCredentials, admission_plan
from proxy.byok_store import ByokEntry
from tests.proxy.conftest import IN_PLAN, Harness
from tests.proxy.fakes import PRINCIPAL, FakeSecrets

TEAM_KEY = "sk-team-a-own-provider-key-0123456789"
OTHER_KEY = "sk-someone-else-0123456789abcdef"
MESSAGES = [{"role": "user", "content": "Say hello with my own key."}]
MODELS = {"mock-byok": {"kind": "openai", "model": "mock-byok-model"}}
ALIASES = (*IN_PLAN, "mock-byok")


@dataclass
class FakeEntries:
    teams: dict[str, dict[str, ByokEntry]] = field(default_factory=dict)
    reads: int = 0

    def register(self, alias: str, secret_name: str, team: str = PRINCIPAL.team) -> None:
        entry = ByokEntry(team, alias, secret_name, secret_name[-4:], datetime(2025, 1, 1, tzinfo=UTC))
        self.teams.setdefault(team, {})[alias] = entry

    async def for_team(self, team: str) -> dict[str, ByokEntry]:
        self.reads += 1
        return dict(self.teams.get(team, {}))


@dataclass
class Byok:
    harness: Harness
    entries: FakeEntries
    secrets: FakeSecrets


@pytest.fixture
def make_byok(make_proxy: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Byok]:
    def build(plan: Plan, *, registered: tuple[str, ...] = ("mock-byok",)) -> Byok:
        harness = make_proxy(plans=(plan,), models=MODELS)
        entries, secrets = FakeEntries(), FakeSecrets({"byok-team-a": TEAM_KEY})
        for alias in registered:
            entries.register(alias, "byok-team-a")
        byok = ByokCredentials(
            entries=entries, secrets=secrets, upstreams=harness.service._upstreams.config, ttl_seconds=60,
        )
        monkeypatch.setattr(harness.service, "_byok", byok)  # the seam wiring fills in
        harness.mock.required_keys = {"mock-byok-model": TEAM_KEY}
        return Byok(harness, entries, secrets)

    return build


def plan(**byok: object) -> Plan:
    return Plan(plan_id="test-plan", models=ALIASES, **byok)  # type: ignore[arg-type]


async def test_the_teams_own_key_reaches_the_upstream_and_nothing_is_charged(make_byok: Callable[..., Byok]) -> None:
    byok = make_byok(plan(byok="allow"))
    proxy = byok.harness
    async with proxy.openai() as client:
        completion = await client.chat.completions.create(model="mock-byok", messages=MESSAGES)
        stream = await client.chat.completions.create(model="mock-byok", messages=MESSAGES, stream=True)
        [_ async for _ in stream]
    assert completion.usage is not None and completion.usage.total_tokens > 0
    sent = [r for r in proxy.upstream.received if r.path == "/v1/chat/completions"]
    assert [r.headers["authorization"] for r in sent] == [f"Bearer {TEAM_KEY}"] * 2
    records = proxy.sink.wait_for(2)
    assert [(r.byok, r.plan_tokens, r.status) for r in records] == [(True, 0, 200)] * 2
    assert records[0].total_tokens == completion.usage.total_tokens  # the tokens are still recorded
    assert proxy.limiter.calls("admit") == [("mock-byok", 0)] * 2
    assert proxy.limiter.calls("settle") == [0, 0]
    assert byok.secrets.reads == ["byok-team-a"] and byok.entries.reads == 1  # cached


async def test_allow_falls_back_to_liutongs_credential_for_other_aliases(make_byok: Callable[..., Byok]) -> None:
    byok = make_byok(plan(byok="allow"))
    async with byok.harness.openai() as client:
        await client.chat.completions.create(model="mock-chat", messages=MESSAGES)
    assert "authorization" not in byok.harness.upstream.received[-1].headers
    [record] = byok.harness.sink.records
    assert record.byok is False and record.plan_tokens == record.total_tokens


async def test_a_plan_fee_is_what_a_byok_call_costs(make_byok: Callable[..., Byok]) -> None:
    byok = make_byok(plan(byok="allow", byok_fee_plan_tokens=7))
    async with byok.harness.openai() as client:
        await client.chat.completions.create(model="mock-byok", messages=MESSAGES)
    [record] = byok.harness.sink.records
    assert (record.byok, record.plan_tokens) == (True, 7)
    assert byok.harness.limiter.calls("admit") == [("mock-byok", 7)] and byok.harness.limiter.calls("settle") == [7]


async def test_require_refuses_an_alias_without_the_teams_key(make_byok: Callable[..., Byok]) -> None:
    byok = make_byok(plan(byok="require"))
    async with byok.harness.openai() as client:
        with pytest.raises(openai.PermissionDeniedError) as refused:
            await client.chat.completions.create(model="mock-chat", messages=MESSAGES)
        await client.chat.completions.create(model="mock-byok", messages=MESSAGES)
    assert refused.value.code == "byok_required" and refused.value.body["param"] == "model"  # type: ignore[index]
    assert [r.byok for r in byok.harness.sink.records] == [True]
    assert byok.harness.limiter.calls("admit") == [("mock-byok", 0)]  # the refusal reserved nothing


async def test_forbid_ignores_a_registration(make_byok: Callable[..., Byok]) -> None:
    byok = make_byok(plan(), registered=("mock-chat",))
    async with byok.harness.openai() as client:
        await client.chat.completions.create(model="mock-chat", messages=MESSAGES)
    assert "authorization" not in byok.harness.upstream.received[-1].headers
    assert byok.harness.sink.records[0].byok is False and byok.entries.reads == 0


async def test_an_azure_openai_alias_never_gets_an_api_key(make_byok: Callable[..., Byok]) -> None:
    byok = make_byok(plan(byok="allow"), registered=("mock-azure",))
    async with byok.harness.openai() as client:
        await client.chat.completions.create(model="mock-azure", messages=MESSAGES)
    assert byok.harness.upstream.received[-1].headers["authorization"] == "Bearer entra-token-for-azure-openai"
    assert byok.harness.sink.records[0].byok is False


async def test_a_refused_team_key_is_a_403_that_names_no_key_and_is_read_again(make_byok: Callable[..., Byok]) -> None:
    byok = make_byok(plan(byok="allow"))
    byok.harness.mock.required_keys = {"mock-byok-model": OTHER_KEY}
    async with byok.harness.openai() as client:
        with pytest.raises(openai.PermissionDeniedError) as refused:
            await client.chat.completions.create(model="mock-byok", messages=MESSAGES)
        byok.secrets.values["byok-team-a"] = OTHER_KEY  # the operator registered a working key meanwhile
        await client.chat.completions.create(model="mock-byok", messages=MESSAGES)
    assert refused.value.code == "byok_credential_refused"
    assert TEAM_KEY not in str(refused.value.body) and TEAM_KEY[-8:] not in refused.value.message
    assert byok.entries.reads == 2 and byok.secrets.reads == ["byok-team-a"] * 2
    failed, served = byok.harness.sink.records
    assert (failed.status, failed.byok, failed.plan_tokens) == (403, True, 0) and served.byok is True
    assert byok.harness.limiter.calls("refund") == [None]


def test_a_byok_call_without_a_fee_is_admitted_with_nothing_to_reserve() -> None:
    prepaid = Plan(plan_id="p", models=("m",), mode="prepaid", byok="allow")
    quota = Plan(plan_id="q", models=("m",), monthly_included_tokens=10, byok="allow")
    assert admission_plan(prepaid).mode == "quota" and admission_plan(prepaid).monthly_included_tokens is None
    assert admission_plan(quota).monthly_included_tokens is None and admission_plan(quota).rpm == quota.rpm
    with_fee = prepaid.model_copy(update={"byok_fee_plan_tokens": 5})
    assert admission_plan(with_fee) is with_fee
