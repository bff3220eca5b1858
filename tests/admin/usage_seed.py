"""Usage records for the admin usage-report tests, written through the usage writer's own entity layout."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from core.tables import Tables
from usage.direct import write_records
from usage.records import UsageRecord

NOW = datetime(2026, 11, 22, 10, 30, tzinfo=UTC)
TEAMS = ("team-a", "team-b", '=HYPERLINK("http://evil.example")', "+1", "-2", "@SUM(A1)", "o'neil and co")


def record_at(rng: random.Random, index: int, at: datetime) -> UsageRecord:
    prompt, completion = rng.randint(0, 5_000), rng.randint(0, 2_000)
    return UsageRecord(
        request_id=f"req-{index:05d}", at=at, team=rng.choice(TEAMS), key_id=rng.choice(("k1", "k2", "k3")),
        plan_id=rng.choice(("standard", "starter")), model_alias=rng.choice(("gpt-4o", "gpt-4o-mini")),
        endpoint="/v1/chat/completions", status=rng.choice((200, 200, 200, 400, 429, 500)),
        latency_ms=rng.randint(5, 900), prompt_tokens=prompt, cached_tokens=rng.randint(0, prompt),
        completion_tokens=completion, total_tokens=prompt + completion, plan_tokens=prompt + 2 * completion,
        estimated=index % 7 == 0, deployment_id=rng.choice((None, "dep-1", "dep-2")),
        reasoning_tokens=min(completion, index * 3), auto=index % 3 == 0, byok=index % 4 == 1,
        unit=(None, None, "image", "audio_second", "character")[index % 5], quantity=index % 5 > 1 and index,
    )


def seed_records() -> list[UsageRecord]:
    rng = random.Random(20261122)
    times = [
        NOW - timedelta(days=day, hours=hour, minutes=rng.randint(0, 59), seconds=rng.randint(0, 59))
        for day in range(10) for hour in (0, 1, 5, 11, 17)
    ]
    # Bounds of the default window [NOW - 7 days, NOW): the first is in, the others are out.
    times += [NOW - timedelta(days=7), NOW - timedelta(days=7, microseconds=1), NOW, NOW - timedelta(seconds=1)]
    times += [times[3]] * 3 + [times[8]] * 2  # several records in one partition and one hour
    return [record_at(rng, index, at) for index, at in enumerate(times)]


async def write(tables: Tables, records: list[UsageRecord]) -> None:
    """The writer's path (raw rows with their aggregates, then the copy), one writer shard per third."""
    for index, shard in enumerate(("a1b2c3", "d4e5f6", "0789ab")):
        await write_records(tables, records[index::3], shard=shard)
