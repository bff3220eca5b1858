"""The customer usage benchmark's world: a month of aggregates for many owners, and the real services over them.

Owners are teams on `standard`, each with MODELS x KEYS groups; every group appears in every hour (the most a
reader can meet). The month is seeded in the writer's layout - each hour's aggregate copy (usage.copy) and its
usage partition's header (usage.store), as the writer leaves them - so readers check and read exactly what they
would in Azure; how fast the writer makes them is bench.usage's question.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from azure.data.tables import UpdateMode

import services
from core.hours import HOUR, hour_key
from core.settings import Settings
from core.tables import int64
from keystore.keys import display_prefix, generate_key, hash_key
from keystore.models import KeyRecord, KeyStatus
from keystore.teams import Team
from localdev.stack import write_mock_upstreams
from proxy.account import AccountUsage
from usage.copy import AggregateCopy
from usage.groups import Counts
from usage.month_to_date import MonthToDate
from usage.store import HEADER, hour_partition

MONTH = datetime(2031, 3, 1, tzinfo=UTC)
PLAN = "standard"
MODELS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")
KEYS = 2
SHARD = "b0b0b0"


def now_after(days: int) -> datetime:
    """Half an hour into the hour `days` whole days after the month began."""
    return MONTH + timedelta(days=days, minutes=30)


def hours_until(now: datetime) -> list[datetime]:
    hour, hours = MONTH, []
    while hour <= now:
        hours.append(hour)
        hour += HOUR
    return hours


def team_name(index: int) -> str:
    return f"t{index:05d}"


def key_id(team: str, key: int) -> str:
    return f"{team}-k{key}"


def counts_of(owners: int) -> Counts:
    """One hour of every owner's groups (lognormal-ish tokens, all groups present)."""
    counts: Counts = {}
    for index, model, key in itertools.product(range(owners), MODELS, range(KEYS)):
        team = team_name(index)
        requests = 1 + (index * 7 + key * 3 + len(model)) % 40
        prompt, completion = requests * 600, requests * 180 * (model != "text-embedding-3-small")
        total = prompt + completion
        counts[(team, None, PLAN, model, key_id(team, key))] = [
            requests, requests // 50, prompt, prompt // 4, completion, total, total, 0,
        ]
    return counts


async def seed_month(built: services.Services, owners: int, now: datetime) -> int:
    """Every hour of the month until `now`; the shard-hours written."""
    copy, usage = AggregateCopy(built.tables), built.tables.table("usage")
    counts = counts_of(owners)
    requests = sum(counters[0] for counters in counts.values())
    hours = hours_until(now)
    for hour in hours:
        await copy.write(hour_key(hour), SHARD, counts, version=1, requests=requests)
        header = {"PartitionKey": hour_partition(hour, SHARD), "RowKey": HEADER, "version": int64(1),
                  "requests": int64(requests)}
        await usage.upsert_entity(header, mode=UpdateMode.REPLACE)
    return len(hours)


async def seed_caller(built: services.Services) -> str:
    """Owner 0's team and its keys in the key store (key ids those of its usage groups); one key, in plain."""
    team = team_name(0)
    await built.teams.put(Team(team=team, plan_id=PLAN, description="benchmark"))
    plain = ""
    for key in range(KEYS):
        secret = generate_key()
        plain = plain or secret
        await built.keys.insert(KeyRecord(
            key_hash=hash_key(secret), key_id=key_id(team, key), prefix=display_prefix(secret), team=team,
            description="benchmark", status=KeyStatus.ACTIVE, created_at=MONTH,
        ))
    return plain


def bench_settings(connection_string: str, work: Path) -> Settings:
    values = {
        "storage_connection_string": connection_string, "table_prefix": "bench",
        "usage_journal_dir": str(work / "journal"), "webhook_secret": "bench-webhook-secret",
        "master_secret": "bench-master-secret-0123456789abcdef", "api_app_id_uri": "api://liutong-bench",
        "api_client_id": "11111111-2222-3333-4444-555555555555",
        "upstreams_file": write_mock_upstreams("http://127.0.0.1:9"),
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


@dataclass
class Skew:
    """A monotonic clock that can be moved ahead, to make a cache's TTLs fall due on demand."""

    ahead: float = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.ahead


def install_view(built: services.Services, now: datetime, clock: Skew) -> MonthToDate:
    """The view the route answers with, on the benchmark's month (a set wall clock) and a movable monotonic one."""
    month = MonthToDate(built.tables, now=lambda: now, clock=clock)
    built.account = AccountUsage(month=month, plans=built.plans.get, keys=built.keys, balance=built.limiter.balance)
    return month


def work_dir(root: Path) -> tempfile.TemporaryDirectory[str]:
    root.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(dir=root)
