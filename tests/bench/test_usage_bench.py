"""The usage benchmark's core at a tiny size, on the session's Azurite: it counts what it wrote and metering
bills. Only correctness is asserted, never a timing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench.usage_data import BENCH_PLAN, bench_catalog, build_population, hour_counts
from bench.usage_measure import accepted, measure_size
from core.settings import Settings
from core.tables import Tables
from localdev.standin import start_in_thread
from localdev.standin.metering import metering_of

RECORDS, GROUPS, DEPLOYMENTS = 2_000, 50, 4


def test_the_population_covers_every_deployment_and_the_requested_groups() -> None:
    catalog = bench_catalog(Settings(_env_file=None).plans_file)  # type: ignore[call-arg]
    population = build_population(catalog, groups=GROUPS, deployments=DEPLOYMENTS, seed=7)
    keys = {(g.team, g.deployment_id, g.plan.plan_id, g.model, g.key_id) for g in population.groups}
    assert len(population.groups) == len(keys) == GROUPS
    billed = {g.deployment_id for g in population.groups if g.plan.plan_id == BENCH_PLAN}
    assert billed == {deployment_id for deployment_id, _ in population.deployments}
    assert sum(hour_counts(RECORDS, 24)) == RECORDS


async def test_the_benchmark_core_counts_every_record_and_bills(
    tables: Tables, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(usage_journal_dir=str(tmp_path))
    catalog = bench_catalog(settings.plans_file)
    population = build_population(catalog, groups=GROUPS, deployments=DEPLOYMENTS, seed=7)
    with start_in_thread() as standin:
        result = await measure_size(
            settings, tables, population, catalog, standin, records=RECORDS, storage_pid=None, seed=7, repeats=1
        )
        billed = metering_of(standin.state).accepted_events()

    assert result.write.phase.wall > 0 and result.write.spilled == 0
    assert result.write.transactions > 0
    counts = result.counts
    assert counts.requests == RECORDS  # the report's total is every record written
    assert counts.groups == GROUPS and counts.hours == 24 and counts.behind == 0
    first, hourly = result.metering_first[1], result.metering_hourly[1]
    assert first.exit_code == 0 and hourly.exit_code == 0
    assert accepted(first) == len(first.events) > 0
    assert accepted(hourly) == len(hourly.events) == DEPLOYMENTS  # the last hour, once per deployment
    assert len(billed) == accepted(first) + accepted(hourly)
    assert any("'ok': True" in note for note in result.notes)  # verify of the last hour found no difference
