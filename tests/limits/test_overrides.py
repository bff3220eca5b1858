"""Limit overrides: how they change a plan, and their Table round trip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.tables import Tables
from keystore.principal import LimitOverride
from limits.overrides import OverrideStore, StoredOverride, effective_plan
from limits.plans import Plan

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
QUOTA = Plan(plan_id="q", models=("a", "b"), rpm=60, tpm=1000, monthly_included_tokens=500, overage="bill",
             dimension="tokens_1k", rates={"b": 2})
PREPAID = Plan(plan_id="p", models=("a",), rpm=60, mode="prepaid")


def test_no_override_or_an_expired_one_leaves_the_plan() -> None:
    assert effective_plan(QUOTA, None, NOW) is QUOTA
    expired = LimitOverride(rpm=1, expires_at=NOW)
    assert effective_plan(QUOTA, expired, NOW) is QUOTA
    assert effective_plan(QUOTA, expired, NOW - timedelta(seconds=1)).rpm == 1


def test_given_fields_replace_the_plan_and_the_rest_stays() -> None:
    plan = effective_plan(QUOTA, LimitOverride(rpm=5, models=("a",)), NOW)
    assert (plan.rpm, plan.tpm, plan.models, plan.monthly_included_tokens) == (5, 1000, ("a",), 500)
    assert plan.rates == {"b": 2} and plan.plan_tokens("b", 10) == 20 and not plan.allows("b")
    raised = effective_plan(QUOTA, LimitOverride(tpm=10**9), NOW)
    assert raised.tpm == 10**9 and raised.rpm == 60


def test_a_monthly_cap_blocks_a_quota_plan_and_leaves_a_prepaid_plan() -> None:
    capped = effective_plan(QUOTA, LimitOverride(monthly_tokens=100), NOW)
    assert (capped.monthly_included_tokens, capped.overage, capped.mode) == (100, "block", "quota")
    assert effective_plan(PREPAID, LimitOverride(monthly_tokens=100), NOW) == PREPAID


async def test_the_store_round_trips_large_numbers_and_clears_idempotently(tables: Tables) -> None:
    store = OverrideStore(tables)
    limits = LimitOverride(rpm=7, tpm=5 * 10**9, monthly_tokens=3 * 10**9, models=("a", "b"), expires_at=NOW)
    await store.put("dep-" + "a" * 64, StoredOverride(limits, reason="trial", set_by="oid-1", set_at=NOW))
    found = await store.get("dep-" + "a" * 64)
    assert found == StoredOverride(limits, reason="trial", set_by="oid-1", set_at=NOW)
    assert await store.limits("team-other") is None
    await store.put("dep-" + "a" * 64, StoredOverride(LimitOverride(rpm=1)))
    assert await store.limits("dep-" + "a" * 64) == LimitOverride(rpm=1)  # replaced, not merged
    assert await store.delete("dep-" + "a" * 64) is True
    assert await store.delete("dep-" + "a" * 64) is False
