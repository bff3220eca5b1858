"""Plans and their limits, from a validated config file keyed by plan ID.

Marketplace plan IDs (the webhook's `plan.name`) and internal plans for operator-provisioned teams
live side by side.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    plan_id: str = Field(min_length=1, max_length=100)
    models: tuple[str, ...] = Field(min_length=1)
    rpm: int | None = Field(default=None, gt=0)
    tpm: int | None = Field(default=None, gt=0)
    mode: Literal["quota", "prepaid"] = "quota"
    monthly_included_tokens: int | None = Field(default=None, ge=0)
    overage: Literal["block", "bill"] = "block"
    # A model may count 1 token as N plan tokens.
    rates: dict[str, float] = Field(default_factory=dict)
    # Marketplace metered-billing dimension for usage above the included tokens (overage "bill").
    dimension: str | None = Field(default=None, min_length=1, max_length=100)
    dimension_unit_tokens: int = Field(default=1000, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> Plan:
        unknown = set(self.rates) - set(self.models)
        if unknown:
            raise ValueError(f"rates name models the plan does not allow: {sorted(unknown)}")
        if any(not math.isfinite(r) or r <= 0 for r in self.rates.values()):
            raise ValueError("rates must be positive numbers")
        if self.overage == "bill" and self.dimension is None:
            raise ValueError("overage 'bill' needs a marketplace dimension")
        return self

    def allows(self, model_alias: str) -> bool:
        return model_alias in self.models

    def plan_tokens(self, model_alias: str, tokens: int) -> int:
        """Tokens as the plan counts them (rounded up so a rate never bills less than used)."""
        return math.ceil(tokens * self.rates.get(model_alias, 1.0))


class PlanCatalog(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    plans: tuple[Plan, ...]

    @model_validator(mode="after")
    def _unique(self) -> PlanCatalog:
        ids = [p.plan_id for p in self.plans]
        if len(ids) != len(set(ids)):
            raise ValueError("plan IDs must be unique")
        return self

    @functools.cached_property
    def _by_id(self) -> dict[str, Plan]:
        # Looked up on every proxied call; a plain instance attribute once computed (pydantic's private
        # attributes go through __getattr__ on every access).
        return {plan.plan_id: plan for plan in self.plans}

    def get(self, plan_id: str) -> Plan | None:
        return self._by_id.get(plan_id)

    @classmethod
    def load(cls, path: str | Path) -> PlanCatalog:
        return cls.model_validate(json.loads(Path(path).read_text()))
