"""The usage benchmark's data: the groups usage is spread over, the records of one hour, the metered plan, and
the deployments that bill it. Pure except `seed_deployments` (Table Storage and the Metering stand-in).

Groups are (team, deployment, plan, model, key) as usage.groups counts them: every Marketplace deployment has
its own team on BENCH_PLAN with a current and a rotated key for each of the plan's models; operator teams
(no deployment) on the catalog's other plans fill the rest. Requests are skewed (Zipf over the groups, in a
seeded random order), but every group appears in every hour whenever the hour has at least one record per
group: then both sizes read the same aggregate rows and their ratio isolates what the records cost.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from core.tables import Tables
from limits.plans import Plan, PlanCatalog
from localdev.standin.metering import MeteringStandin
from provisioning.deployment_store import DeploymentStore
from provisioning.deployments import Deployment
from provisioning.notifications import Plan as MarketplacePlan
from usage.records import UsageRecord

BENCH_PLAN = "bench-payg"
DIMENSION = "tokens_1k"
CHAT, EMBEDDINGS = "/v1/chat/completions", "/v1/embeddings"
EMBEDDING_MODELS = frozenset({"text-embedding-3-small"})
MARKETPLACE_KEYS = 2  # the current key and the one rotated out (still valid for its grace period)
OPERATOR_KEYS = 4
ZIPF = 1.0
# status, share of all requests: throttled, refused, upstream failures, callers gone mid-stream.
ERRORS = ((429, 0.006), (400, 0.003), (500, 0.001), (502, 0.002), (499, 0.002))
APPLICATIONS = "Microsoft.Solutions/applications"
ESTIMATED = 0.003  # streams cut before the final usage chunk: tokens estimated


def bench_plan() -> Plan:
    """`standard`'s terms (config/plans.json) without included tokens, so every hour with usage bills."""
    return Plan(
        plan_id=BENCH_PLAN, models=("gpt-4o-mini", "gpt-4o", "text-embedding-3-small"), rpm=600, tpm=1_000_000,
        mode="quota", monthly_included_tokens=0, overage="bill", rates={"gpt-4o": 15, "text-embedding-3-small": 0.1},
        dimension=DIMENSION, dimension_unit_tokens=1000,
    )


def bench_catalog(plans_file: str) -> PlanCatalog:
    """The configured plans and BENCH_PLAN."""
    configured = PlanCatalog.load(plans_file).plans
    return PlanCatalog(plans=(*(p for p in configured if p.plan_id != BENCH_PLAN), bench_plan()))


@dataclass(frozen=True)
class BenchGroup:
    team: str
    key_id: str
    plan: Plan
    model: str
    deployment_id: str | None = None
    resource_usage_id: str | None = None


@dataclass(frozen=True)
class Population:
    groups: tuple[BenchGroup, ...]
    cumulative: tuple[float, ...]  # cumulative Zipf weights, in `groups` order
    deployments: tuple[tuple[str, str], ...]  # (deployment_id, resource_usage_id)


def build_population(catalog: PlanCatalog, *, groups: int, deployments: int, seed: int) -> Population:
    rng = random.Random(seed)
    accounts = [(_hex(rng, 32), str(uuid.UUID(int=rng.getrandbits(128), version=4))) for _ in range(deployments)]
    chosen = list(itertools.islice(_marketplace(catalog, accounts), groups))
    chosen += itertools.islice(_operators(catalog), groups - len(chosen))
    rng.shuffle(chosen)  # which group is heavy is random, not tied to its kind
    weights = [1 / (rank + 1) ** ZIPF for rank in range(len(chosen))]
    return Population(tuple(chosen), tuple(itertools.accumulate(weights)), tuple(accounts))


def _marketplace(catalog: PlanCatalog, accounts: list[tuple[str, str]]) -> Iterator[BenchGroup]:
    """Key by key, model by model across every deployment: any prefix covers as many deployments as it can."""
    plan = catalog.get(BENCH_PLAN)
    assert plan is not None
    for key, model in itertools.product(range(MARKETPLACE_KEYS), plan.models):
        for index, (deployment_id, resource_id) in enumerate(accounts):
            team = f"mkt-{index:04d}"
            yield BenchGroup(team, f"{team}-k{key}", plan, model, deployment_id, resource_id)


def _operators(catalog: PlanCatalog) -> Iterator[BenchGroup]:
    plans = [p for p in catalog.plans if p.plan_id != BENCH_PLAN] or [catalog.plans[0]]
    for index in itertools.count():
        plan = plans[index % len(plans)]
        team = f"ops-{index:04d}"
        for key, model in itertools.product(range(OPERATOR_KEYS), plan.models):
            yield BenchGroup(team, f"{team}-k{key}", plan, model)


def hour_counts(records: int, hours: int) -> list[int]:
    """`records` spread as evenly as whole records allow over `hours`."""
    return [records // hours + (index < records % hours) for index in range(hours)]


def records_of_hour(population: Population, rng: random.Random, hour: datetime, count: int) -> list[UsageRecord]:
    """`count` records in time order within the UTC hour starting at `hour`."""
    size = len(population.groups)
    picks = list(range(size)) if count >= size else []  # every group once when the hour has room for it
    picks += rng.choices(range(size), cum_weights=population.cumulative, k=count - len(picks))
    rng.shuffle(picks)
    offsets = sorted(rng.randrange(3_600_000_000) for _ in range(count))
    moments = (hour + timedelta(microseconds=us) for us in offsets)
    return [_record(population.groups[g], rng, at) for g, at in zip(picks, moments, strict=True)]


def _record(group: BenchGroup, rng: random.Random, at: datetime) -> UsageRecord:
    embeddings = group.model in EMBEDDING_MODELS
    status, estimated = _outcome(rng)
    prompt = completion = cached = 0
    if status < 400 or estimated:
        prompt = _lognormal(rng, 300 if embeddings else 600, 1.2 if embeddings else 1.0, 200_000)
        completion = 0 if embeddings else _lognormal(rng, 180, 0.9, 16_000)
        cached = int(prompt * rng.uniform(0.2, 0.9)) if not embeddings and rng.random() < 0.3 else 0
    total = prompt + completion
    return UsageRecord(
        request_id=f"req_{rng.getrandbits(128):032x}", at=at, team=group.team, key_id=group.key_id,
        plan_id=group.plan.plan_id, model_alias=group.model, endpoint=EMBEDDINGS if embeddings else CHAT,
        status=status, latency_ms=_lognormal(rng, 60 if embeddings else 900, 0.6, 120_000),
        prompt_tokens=prompt, cached_tokens=cached, completion_tokens=completion, total_tokens=total,
        plan_tokens=group.plan.plan_tokens(group.model, total), estimated=estimated,
        deployment_id=group.deployment_id, resource_usage_id=group.resource_usage_id,
    )


def _outcome(rng: random.Random) -> tuple[int, bool]:
    """(status, estimated): mostly 200; a few errors; a few streams whose tokens were estimated."""
    draw = rng.random()
    if draw < ESTIMATED:
        return rng.choice((200, 499, 502)), True
    draw -= ESTIMATED
    for status, share in ERRORS:
        if draw < share:
            return status, False
        draw -= share
    return 200, False


def _lognormal(rng: random.Random, median: float, sigma: float, cap: int) -> int:
    return max(1, min(cap, int(rng.lognormvariate(math.log(median), sigma))))


def _hex(rng: random.Random, size: int) -> str:
    return hashlib.sha256(rng.getrandbits(256).to_bytes(32, "big")).hexdigest()[: size * 2]


async def seed_deployments(tables: Tables, metering: MeteringStandin, population: Population) -> None:
    """Every Marketplace deployment, as the webhook stores it, registered with the Metering stand-in."""
    when = datetime(2026, 1, 1, tzinfo=UTC)
    store = DeploymentStore(tables)
    for index, (deployment_id, resource_id) in enumerate(population.deployments):
        application = f"/subscriptions/{resource_id}/resourceGroups/rg/providers/{APPLICATIONS}/a{index}"
        await store.create(Deployment(
            deployment_id=deployment_id, application_id=application, state="Succeeded", last_event_type="PUT",
            state_key="0", first_event_time=when, last_event_time=when, resource_usage_id=resource_id,
            plan=MarketplacePlan(publisher="liutong", product="liutong-llm", name=BENCH_PLAN, version="1.0.0"),
        ))
        metering.register_resource(resource_id, BENCH_PLAN, (DIMENSION,))
