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


class UnitRates(BaseModel):
    """Plan tokens per media unit (usage.groups.UNITS) of one model alias."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Per generated image, by size ("1024x1024", "auto", …): the sizes listed are the only ones allowed.
    image: dict[str, float] = Field(default_factory=dict)
    # Sent as the size of a request that names none; the first size listed when unset.
    default_size: str | None = None
    audio_second: float | None = None  # per second of transcribed audio
    character: float | None = None  # per character of text turned into speech

    @model_validator(mode="after")
    def _consistent(self) -> UnitRates:
        rates = [*self.image.values(), *(r for r in (self.audio_second, self.character) if r is not None)]
        if any(not math.isfinite(r) or r <= 0 for r in rates):
            raise ValueError("unit rates must be positive numbers")
        if self.default_size is not None and self.default_size not in self.image:
            raise ValueError("default_size must be one of the image sizes listed")
        return self

    @property
    def image_default_size(self) -> str | None:
        return self.default_size or next(iter(self.image), None)


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
    # Whether the Responses API may have the upstream store content (store, previous_response_id, background).
    responses_store: Literal["forbid", "allow"] = "forbid"
    # Media endpoints: plan tokens per image (by size), audio second or input character, per model alias.
    unit_rates: dict[str, UnitRates] = Field(default_factory=dict)
    max_images_per_request: int = Field(default=4, ge=1, le=10)
    # Auto mode (proxy.auto): `model: "auto"` picks the first of these, in this order, that fits the request.
    auto_models: tuple[str, ...] = ()
    # After an alias's sunset, its replacement (when the plan has it) serves calls to it instead of a 404.
    redirect_on_sunset: bool = False
    # Prepaid packs for a model past its sunset: general credit, or packs for its replacement (admin.credits).
    pack_on_sunset: Literal["general", "replacement"] = "general"
    # Bring your own key (proxy.byok): whether a team's own provider credential may ("allow") or must ("require")
    # serve its calls to an alias; "allow" falls back to Liutong's credential when the team has none.
    byok: Literal["forbid", "allow", "require"] = "forbid"
    # What a BYOK call costs in plan tokens instead of its tokens (drawn and metered like them).
    byok_fee_plan_tokens: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> Plan:
        unknown = set(self.rates) - set(self.models)
        if unknown:
            raise ValueError(f"rates name models the plan does not allow: {sorted(unknown)}")
        if any(not math.isfinite(r) or r <= 0 for r in self.rates.values()):
            raise ValueError("rates must be positive numbers")
        unpriced = set(self.unit_rates) - set(self.models)
        if unpriced:
            raise ValueError(f"unit_rates name models the plan does not allow: {sorted(unpriced)}")
        if "auto" in self.models:
            raise ValueError("'auto' is not a model: list the auto pool in auto_models")
        if not set(self.auto_models) <= set(self.models) or len(set(self.auto_models)) != len(self.auto_models):
            raise ValueError("auto_models must be distinct models of the plan")
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
