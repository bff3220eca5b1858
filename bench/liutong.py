"""Liutong's leg: its local server in its own process, with a real key in Azurite and usage recording on."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import ALIAS, HOST, LIUTONG, LegUnavailable, Target
from bench.legs import probe_both, with_pythonpath
from bench.processes import Processes, wait_http
from core.settings import Settings
from core.tables import Tables
from keystore.keys import display_prefix, generate_key, hash_key, random_key_id
from keystore.models import KeyRecord, KeyStatus
from keystore.repository import KeyRepository
from keystore.teams import Team, TeamStore
from localdev.serve import settings_environ
from localdev.stack import LocalStack
from usage.store import RAW_ROWS

TEAM = "bench"
PLAN_ID = "bench-unlimited"
# Environment variables that would make azure-identity look elsewhere than the stand-in's App Service MSI.
_COMPETING_IDENTITY_VARS = ("MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT", "IDENTITY_SERVER_THUMBPRINT")


def write_configs(directory: Path, mock_url: str) -> tuple[Path, Path]:
    upstreams = {"description": "Benchmark: one alias on the mock upstream.",
                 "models": {ALIAS: {"kind": "openai", "base_url": f"{mock_url}/v1", "model": "mock-model"}}}
    plans = {"plans": [{
        "plan_id": PLAN_ID, "models": [ALIAS],
        "rpm": 1_000_000_000, "tpm": 1_000_000_000_000,  # far above anything a run can reach
        "mode": "quota", "monthly_included_tokens": 1_000_000, "overage": "bill",  # usage recorded, never blocked
        "dimension": "tokens_1k", "dimension_unit_tokens": 1000,
    }]}
    upstreams_path, plans_path = directory / "upstreams.json", directory / "plans.json"
    upstreams_path.write_text(json.dumps(upstreams, indent=2))
    plans_path.write_text(json.dumps(plans, indent=2))
    return upstreams_path, plans_path


async def seed_key(settings: Settings) -> str:
    """A team on the benchmark plan and one fresh key of it, written with the real stores."""
    key, _ = await seed_team_key(settings, TEAM, PLAN_ID)
    return key


async def seed_team_key(settings: Settings, team: str, plan_id: str) -> tuple[str, str]:
    """A team on `plan_id` and one fresh key of it: the key and its id."""
    tables = Tables(settings)
    try:
        await tables.ensure_tables()
        await TeamStore(tables).put(Team(team=team, plan_id=plan_id, description="benchmark"))
        key, key_id = generate_key(), random_key_id()
        await KeyRepository(tables).insert(KeyRecord(
            key_hash=hash_key(key), key_id=key_id, prefix=display_prefix(key), team=team,
            description="benchmark", status=KeyStatus.ACTIVE, created_at=datetime.now(UTC),
        ))
        return key, key_id
    finally:
        await tables.close()


def count_usage_records(settings: Settings, wait_seconds: float = 2.0) -> str:
    """Proof that usage recording was on: the rows in the usage table once the writer has flushed."""

    async def count() -> int:
        tables = Tables(settings)
        try:
            rows = tables.table("usage").query_entities(RAW_ROWS, select=["RowKey"], results_per_page=1000)
            return sum([1 async for _ in rows])
        finally:
            await tables.close()

    time.sleep(wait_seconds)
    try:
        return str(asyncio.run(count()))
    except Exception as exc:  # noqa: BLE001 - a sanity figure; the run's results stand without it
        return f"could not count ({exc!r:.200})"


def service_environ(stack: LocalStack, settings: Settings) -> dict[str, str]:
    """This process's environment for a service process: `settings` as LIUTONG_*, identity from the stand-in."""
    assert stack.standin is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIUTONG_") and k not in _COMPETING_IDENTITY_VARS}
    env.update(settings_environ(settings))
    env.update(stack.standin.environ())
    return env


def liutong_settings(stack: LocalStack, mock_url: str, work: Path) -> Settings:
    """Azurite and the stand-in started, the benchmark's upstreams and plan configured."""
    upstreams_path, plans_path = write_configs(work, mock_url)
    try:
        stack.start_dependencies()  # Azurite + the stand-in (thread); sets IDENTITY_* in this process
    except Exception as exc:
        raise LegUnavailable(f"Azurite or the stand-in did not start: {exc!r}") from exc
    assert stack.standin is not None
    stack.setting_overrides.update({
        "upstreams_file": str(upstreams_path), "plans_file": str(plans_path),
        "metering_endpoint": stack.standin.base_url, "usage_journal_dir": str(work / "usage-journal"),
    })
    return stack.settings()


def start_liutong(
    processes: Processes, stack: LocalStack, mock_url: str, work: Path, extra_path: str | None = None
) -> Target:
    settings = liutong_settings(stack, mock_url, work)
    assert stack.standin is not None
    key = asyncio.run(seed_key(settings))
    port = stack.ports.service
    command = [sys.executable, "-m", "localdev.serve", "--host", HOST, "--port", str(port)]
    process = processes.start("liutong", command, with_pythonpath(service_environ(stack, settings), extra_path))
    storage_pid = stack.azurite_process.pid if stack.azurite_process is not None else None
    target = Target(LIUTONG, f"http://{HOST}:{port}", key=key, pid=process.pid, storage_pid=storage_pid)
    try:
        wait_http(target.base_url + "/api/health", process, timeout=60)
    except LegUnavailable as exc:
        raise LegUnavailable(f"{exc}\n{processes.log_tail('liutong')}".strip()) from exc
    probe_both(target, processes, "liutong")
    return target
