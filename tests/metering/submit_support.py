"""Shared set-up of the metering submission tests: plans, usage rows as the writer lays them out,
deployments, a settable clock, and a token source backed by the Azure stand-in."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.credentials import AccessToken

from core.settings import Settings
from core.tables import Tables
from limits.plans import Plan, PlanCatalog
from localdev.standin import RunningStandin
from localdev.standin.metering import METERING_AUDIENCE
from metering.submit_runtime import ensure_metering_tables
from provisioning.deployment_store import DeploymentStore
from provisioning.deployments import Deployment
from provisioning.notifications import Plan as MarketplacePlan
from usage.direct import write_records
from usage.records import UsageRecord

PAYG = "payg"
DIMENSION = "tokens_1k"
INCLUDED = 10_000
UNIT = 1_000

CATALOG = PlanCatalog(
    plans=(
        Plan(
            plan_id=PAYG,
            models=("gpt",),
            monthly_included_tokens=INCLUDED,
            overage="bill",
            dimension=DIMENSION,
            dimension_unit_tokens=UNIT,
        ),
        Plan(
            plan_id="thirds",
            models=("gpt",),
            monthly_included_tokens=0,
            overage="bill",
            dimension="tokens_3",
            dimension_unit_tokens=3,
        ),
        Plan(plan_id="capped", models=("gpt",), monthly_included_tokens=INCLUDED, overage="block"),
    )
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


class StandinCredential:
    """A metering token from the stand-in, as the service's managed identity would get it."""

    def __init__(self, standin: RunningStandin, audience: str = METERING_AUDIENCE) -> None:
        self._standin = standin
        self._audience = audience
        self.scopes: list[str] = []

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.extend(scopes)
        config = self._standin.state.config
        token = self._standin.state.mint_token(
            tid=config.publisher_tenant_id, oid=config.service_principal_id, aud=self._audience
        )
        return AccessToken(token, int(time.time()) + 3600)

    async def close(self) -> None:
        return None


async def prepare_tables(tables: Tables, settings: Settings) -> None:
    await ensure_metering_tables(tables, settings)


async def write_usage(
    tables: Tables,
    at: datetime,
    deployment_id: str | None,
    plan_tokens: int,
    *,
    plan_id: str = PAYG,
    shard: str = "a1b2c3",
    resource_usage_id: str | None = None,
) -> None:
    record = UsageRecord(
        request_id=uuid.uuid4().hex, at=at, team="team-1", key_id="key-1", plan_id=plan_id, model_alias="gpt",
        endpoint="/v1/chat/completions", status=200, latency_ms=12, prompt_tokens=plan_tokens // 2,
        completion_tokens=plan_tokens - plan_tokens // 2, total_tokens=plan_tokens, plan_tokens=plan_tokens,
        deployment_id=deployment_id, resource_usage_id=resource_usage_id,
    )
    await write_records(tables, [record], shard=shard)  # the writer's path: raw row and aggregates together


@dataclass(frozen=True)
class Customer:
    deployment_id: str
    resource_id: str
    plan_id: str


async def add_customer(
    tables: Tables, *, plan_id: str = PAYG, resource_id: str | None = None, state: str = "Succeeded"
) -> Customer:
    deployment_id = uuid.uuid4().hex + uuid.uuid4().hex
    resource_id = resource_id or str(uuid.uuid4())
    when = utc(2026, 1, 1)
    await DeploymentStore(tables).create(
        Deployment(
            deployment_id=deployment_id,
            application_id=f"/subscriptions/{uuid.uuid4()}/resourceGroups/rg/providers/Microsoft.Solutions/applications/a",
            state=state,
            last_event_type="PUT",
            state_key="0",
            first_event_time=when,
            last_event_time=when,
            plan=MarketplacePlan(publisher="contoso", product="liutong", name=plan_id, version="1.0.0"),
            resource_usage_id=resource_id,
        )
    )
    return Customer(deployment_id, resource_id, plan_id)


async def ledger_rows(tables: Tables) -> list[dict[str, Any]]:
    return [dict(e) async for e in tables.table("meterledger").list_entities()]


async def events_of(tables: Tables, resource_id: str) -> list[dict[str, Any]]:
    rows = await ledger_rows(tables)
    return sorted(
        (r for r in rows if r["RowKey"].startswith("h|") and r["resource_id"] == resource_id),
        key=lambda r: r["RowKey"],
    )
