"""The customer usage benchmark's core at a tiny size, on the session's Azurite: the view it times answers the
seeded month exactly. Only correctness is asserted, never a timing."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import services
from bench import customer_usage_seed as seed
from bench.customer_usage import measure
from core.settings import Settings
from keystore.principal import Principal
from usage.groups import COUNTERS


async def test_the_benchmark_times_a_view_that_counts_the_seeded_month(make_settings: Callable[..., Settings]) -> None:
    built = await services.Services.create(make_settings())
    previous = services._current
    services.install(built)
    try:
        args = argparse.Namespace(days=1, seconds=0.2, rounds=1, concurrency=2)
        result = await measure(built, 3, seed.now_after(args.days), args, None)
        assert result.groups == 3 * len(seed.MODELS) * seed.KEYS and result.hours == 25
        assert result.usage.requests > 0 and result.models.requests > 0
        [record, _] = await built.keys.list_for_owner(team=seed.team_name(0))
        principal = Principal(key_id=record.key_id, key_prefix=record.prefix, key_hash=record.key_hash,
                              team=record.team, plan_id=seed.PLAN)
        body = await built.account.summary(principal)
        hourly = [c for g, c in seed.counts_of(3).items() if g[0] == seed.team_name(0)]
        requests = COUNTERS.index("requests")
        assert body["totals"]["requests"] == 25 * sum(c[requests] for c in hourly)
        assert {k["id"] for k in body["keys"]} == {f"{seed.team_name(0)}-k{i}" for i in range(seed.KEYS)}
    finally:
        services.install(previous)
        await built.close()
