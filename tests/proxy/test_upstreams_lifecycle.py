"""The upstreams file's model facts and lifecycle, and the plan's auto pool: what loads and what is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from limits.plans import Plan, PlanCatalog
from proxy.lifecycle import deprecation_headers, http_date, lifecycle_fields
from proxy.upstreams import DEFAULT_CAPABILITIES, UpstreamsConfig

SAMPLE = Path(__file__).resolve().parents[2] / "config"
OPENAI = {"kind": "openai", "base_url": "https://api.example.com/v1", "model": "m"}
DEPRECATED = datetime(2026, 3, 1, tzinfo=UTC)


def config(old: dict[str, Any], **more: dict[str, Any]) -> UpstreamsConfig:
    return UpstreamsConfig.model_validate({"models": {"new": OPENAI, "old": {**OPENAI, **old}, **more}})


def lifecycle(sunset_days: float, **extra: Any) -> dict[str, Any]:
    sunset = DEPRECATED + timedelta(days=sunset_days)
    return {"deprecated_at": DEPRECATED.isoformat(), "sunset_at": sunset.isoformat(), **extra}


def test_the_samples_load_with_an_auto_pool_and_a_deprecated_alias() -> None:
    upstreams = UpstreamsConfig.load(SAMPLE / "upstreams.json")
    plans = PlanCatalog.load(SAMPLE / "plans.json")
    assert any(plan.auto_models for plan in plans.plans)
    assert any(entry.deprecated_at is not None and entry.replacement for entry in upstreams.models.values())
    assert any("embeddings" in entry.capabilities for entry in upstreams.models.values())


def test_facts_default_to_a_text_model_without_limits_or_lifecycle() -> None:
    entry = config({}).models["old"]
    assert entry.capabilities == DEFAULT_CAPABILITIES == ("chat", "responses")
    assert (entry.context_tokens, entry.max_output_tokens, entry.deprecated_at, entry.sunset_at) == (None,) * 4
    assert deprecation_headers(entry, DEPRECATED) == {} and lifecycle_fields(entry, DEPRECATED) == {}


def test_thirty_days_of_notice_load() -> None:
    entry = config(lifecycle(30, replacement="new")).models["old"]
    assert entry.sunset_at == DEPRECATED + timedelta(days=30) and entry.replacement == "new"


def test_immediate_allows_a_short_notice() -> None:
    assert config(lifecycle(0, immediate=True)).models["old"].immediate


@pytest.mark.parametrize(
    ("old", "more"),
    [
        (lifecycle(29.99), {}),  # less than 30 days' notice
        (lifecycle(-1, immediate=True), {}),  # sunset before its deprecation
        (lifecycle(30, replacement="missing"), {}),  # the replacement must be an alias of the file
        (lifecycle(30, replacement="old"), {}),  # ...and another one
        (lifecycle(30, replacement="new"), {"new": {**OPENAI, **lifecycle(30)}}),  # gone with it
        ({"deprecated_at": DEPRECATED.isoformat(), "replacement": "new"},
         {"new": {**OPENAI, **lifecycle(40)}}),  # gone while the old one stays
        ({"sunset_at": DEPRECATED.isoformat()}, {}),  # a sunset without notice
        ({"replacement": "new"}, {}),
        ({"immediate": True, "deprecated_at": DEPRECATED.isoformat()}, {}),  # immediate without a sunset
        ({"deprecated_at": "2026-03-01T00:00:00"}, {}),  # no time zone
        ({"capabilities": ["chat", "chat"]}, {}),
        ({"capabilities": []}, {}),
        ({"capabilities": ["telepathy"]}, {}),
        ({"context_tokens": 0}, {}),
        ({"max_output_tokens": -1}, {}),
        ({}, {"auto": OPENAI}),  # reserved for auto mode
    ],
)
def test_bad_model_facts_are_refused(old: dict[str, Any], more: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        config(old, **more)


def test_a_file_with_a_short_notice_is_refused_at_load(tmp_path: Path) -> None:
    path = tmp_path / "upstreams.json"
    path.write_text(json.dumps({"models": {"old": {**OPENAI, **lifecycle(7)}}}))
    with pytest.raises(ValidationError, match="30 days after deprecated_at"):
        UpstreamsConfig.load(path)


def test_headers_and_model_fields_start_at_the_deprecation() -> None:
    entry = config(lifecycle(45, replacement="new")).models["old"]
    before = DEPRECATED - timedelta(seconds=1)
    assert deprecation_headers(entry, before) == {} and lifecycle_fields(entry, before) == {}
    assert deprecation_headers(entry, DEPRECATED) == {
        "deprecation": f"@{int(DEPRECATED.timestamp())}", "sunset": "Wed, 15 Apr 2026 00:00:00 GMT",
    }
    assert lifecycle_fields(entry, DEPRECATED) == {
        "deprecated_at": int(DEPRECATED.timestamp()),
        "sunset_at": int((DEPRECATED + timedelta(days=45)).timestamp()), "replacement": "new",
    }


def test_http_dates_are_in_gmt_whatever_the_zone() -> None:
    at = datetime(2026, 7, 1, 2, 0, tzinfo=UTC).astimezone(ZoneInfo("Asia/Shanghai"))
    assert http_date(at) == "Wed, 01 Jul 2026 02:00:00 GMT"


@pytest.mark.parametrize(
    "values",
    [
        {"auto_models": ["gpt-4o", "other"]},  # not a model of the plan
        {"auto_models": ["gpt-4o", "gpt-4o"]},
        {"models": ["gpt-4o", "auto"]},
    ],
)
def test_bad_auto_pools_are_refused(values: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Plan.model_validate({"plan_id": "p", "models": ["gpt-4o", "gpt-4o-mini"], **values})


def test_plans_default_to_no_auto_mode_and_no_redirect() -> None:
    plan = Plan(plan_id="p", models=("gpt-4o",))
    assert plan.auto_models == () and plan.redirect_on_sunset is False
