"""`liutong-admin models` against the whole local service, signed in as the operator: usage written into the
stack's tables, then listed per model alias and per caller."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta

import pytest

from core.tables import Tables
from limits.plans import PlanCatalog
from localdev.stack import LocalStack
from tests.admin.cli.conftest import Cli
from tests.admin.test_model_callers import call
from usage.direct import write_records

pytestmark = pytest.mark.e2e


async def test_models_list_and_callers(operator: Cli, stack: LocalStack) -> None:
    team = "models-" + secrets.token_hex(4)
    at = datetime.now(UTC) - timedelta(days=2)
    tables = Tables(stack.settings())
    try:
        await write_records(tables, [call(at, "gpt-4o", team=team, tokens=9, index=i) for i in range(3)],
                            shard=secrets.token_hex(3))
    finally:
        await tables.close()

    listed = await asyncio.to_thread(operator, "models", "list", "--json")
    assert listed.code == 0, listed.err
    aliases = {m["id"]: m for m in listed.json()["data"]}
    plans = PlanCatalog.load(stack.settings().plans_file)
    assert {a for p in plans.plans for a in p.models} <= set(aliases)
    assert aliases["gpt-4o"]["status"] == "active" and aliases["gpt-4o"]["callers"] is None

    callers = await asyncio.to_thread(operator, "models", "callers", "gpt-4o", "--days", "3", "--json")
    assert callers.code == 0, callers.err
    [mine] = [c for c in callers.json()["data"] if c["team"] == team]
    assert (mine["owner"], mine["requests"], mine["total_tokens"]) == (f"team-{team}", 3, 27)
    table = await asyncio.to_thread(operator, "models", "callers", "gpt-4o")
    assert table.code == 0 and f"team-{team}" in table.out

    bad = await asyncio.to_thread(operator, "models", "list", "--days", "500")
    assert bad.code == 1 and "days" in bad.err
