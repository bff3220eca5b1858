"""The plans config: the sample loads, and every kind of bad plan is refused at load time."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from limits.plans import Plan, PlanCatalog

SAMPLE = Path(__file__).resolve().parents[2] / "config" / "plans.json"


def plan(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"plan_id": "p1", "models": ["gpt-4o-mini", "gpt-4o"]}
    values.update(overrides)
    return values


def test_sample_config_loads_with_every_mode() -> None:
    catalog = PlanCatalog.load(SAMPLE)
    assert {p.mode for p in catalog.plans} == {"quota", "prepaid"}
    assert {p.overage for p in catalog.plans if p.mode == "quota"} == {"block", "bill"}
    standard = catalog.get("standard")
    assert standard is not None and standard.plan_tokens("gpt-4o", 10) == 150
    assert catalog.get("nope") is None


def test_load_reads_json(tmp_path: Path) -> None:
    path = tmp_path / "plans.json"
    path.write_text(json.dumps({"plans": [plan(rpm=10, tpm=1000)]}))
    assert PlanCatalog.load(path).plans[0].rpm == 10


@pytest.mark.parametrize("rate", [0, -1, math.inf, math.nan])
def test_bad_rates_are_refused(rate: float) -> None:
    with pytest.raises(ValidationError, match="rates must be positive"):
        Plan.model_validate(plan(rates={"gpt-4o": rate}))


def test_rates_for_models_outside_the_plan_are_refused() -> None:
    with pytest.raises(ValidationError, match="does not allow"):
        Plan.model_validate(plan(rates={"claude-x": 2}))


def test_bill_overage_needs_a_dimension() -> None:
    with pytest.raises(ValidationError, match="dimension"):
        Plan.model_validate(plan(monthly_included_tokens=100, overage="bill"))
    assert Plan.model_validate(plan(overage="bill", dimension="tokens_1k")).dimension == "tokens_1k"


def test_duplicate_plan_ids_are_refused() -> None:
    with pytest.raises(ValidationError, match="unique"):
        PlanCatalog.model_validate({"plans": [plan(), plan(rpm=5)]})


@pytest.mark.parametrize(
    "overrides",
    [
        {"models": []},
        {"rpm": 0},
        {"tpm": -5},
        {"monthly_included_tokens": -1},
        {"mode": "postpaid"},
        {"overage": "ignore"},
        {"burst": 10},
        {"plan_id": ""},
    ],
)
def test_malformed_plans_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Plan.model_validate(plan(**overrides))


def test_plan_tokens_round_up_so_a_rate_never_bills_less() -> None:
    p = Plan.model_validate(plan(rates={"gpt-4o": 0.1}))
    assert p.plan_tokens("gpt-4o", 11) == 2
    assert p.plan_tokens("gpt-4o-mini", 11) == 11
    assert p.allows("gpt-4o") and not p.allows("o3")


def test_catalog_lookup_finds_each_plan_by_id_and_nothing_else() -> None:
    catalog = PlanCatalog.model_validate({"plans": [plan(plan_id=f"plan-{n}") for n in range(3)]})
    assert [catalog.get(f"plan-{n}") for n in range(3)] == list(catalog.plans)
    assert catalog.get("plan-3") is None and catalog.model_copy().get("plan-1") == catalog.plans[1]
