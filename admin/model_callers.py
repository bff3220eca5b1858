"""The model aliases of the upstreams file with their lifecycle, and who still calls the deprecated ones.

Callers come from the hourly usage aggregates (usage.reader) of the range, as the usage report reads them: the
cost grows with hours x writer shards x groups, never with requests. A caller is an owner (a Marketplace
deployment, or a team of operator-minted keys), with its team, calls, tokens and the last day it called.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from admin import validation as v
from core.tables import Tables
from proxy.lifecycle import ModelEntry
from proxy.upstreams import UpstreamsConfig, upstream_model
from usage.groups import COUNTERS, REQUESTS
from usage.reader import read_aggregates
from usage.summing import sum_aggregates

COLUMNS = ("model_alias", "deployment_id", "team")
_TOKENS = COUNTERS.index("total_tokens")


@dataclass
class Caller:
    deployment_id: str | None
    team: str | None
    requests: int = 0
    total_tokens: int = 0
    last_day: datetime | None = None

    @property
    def owner(self) -> str:
        """As keystore.principal.Principal.owner: the deployment when there is one, else the team."""
        return f"dep-{self.deployment_id}" if self.deployment_id else f"team-{self.team}"

    def view(self) -> dict[str, Any]:
        return {
            "owner": self.owner, "deployment_id": self.deployment_id, "team": self.team, "requests": self.requests,
            "total_tokens": self.total_tokens, "last_day": v.iso(self.last_day),
        }


async def read_callers(
    tables: Tables, aliases: Iterable[str], start: datetime, end: datetime
) -> dict[str, list[Caller]]:
    """Per alias, who called it in [start, end) (whole UTC hours), the most calls first."""
    wanted = set(aliases)
    aggregates, _ = await read_aggregates(tables, start, end)
    found: dict[tuple[str, str | None, str | None], Caller] = {}
    for (day, (alias, deployment, team)), counters in sum_aggregates(aggregates, COLUMNS, daily=True).items():
        if alias not in wanted or not counters[REQUESTS]:
            continue
        caller = found.setdefault((alias, deployment, team), Caller(deployment, team))
        caller.requests += counters[REQUESTS]
        caller.total_tokens += counters[_TOKENS]
        caller.last_day = day if caller.last_day is None else max(caller.last_day, day)
    callers: dict[str, list[Caller]] = {alias: [] for alias in wanted}
    for (alias, _, _), caller in found.items():
        callers[alias].append(caller)
    for listed in callers.values():
        listed.sort(key=lambda c: (-c.requests, c.owner))
    return callers


def lifecycle_status(entry: ModelEntry, now: datetime) -> str:
    return "sunset" if entry.sunset(now) else "deprecated" if entry.deprecated(now) else "active"


def model_view(alias: str, entry: ModelEntry, now: datetime, callers: list[Caller] | None) -> dict[str, Any]:
    return {
        "id": alias, "upstream_model": upstream_model(entry), "status": lifecycle_status(entry, now),
        "deprecated_at": v.iso(entry.deprecated_at), "sunset_at": v.iso(entry.sunset_at),
        "replacement": entry.replacement, "immediate": entry.immediate, "capabilities": list(entry.capabilities),
        "context_tokens": entry.context_tokens, "max_output_tokens": entry.max_output_tokens,
        "callers": None if callers is None else [c.view() for c in callers],
    }


async def models_report(
    tables: Tables, config: UpstreamsConfig, now: datetime, start: datetime, end: datetime
) -> dict[str, Any]:
    """Every alias; `callers` for those deprecated (or past their sunset) at `now`, null for the others."""
    retiring = [alias for alias, entry in config.models.items() if entry.deprecated(now)]
    callers = await read_callers(tables, retiring, start, end) if retiring else {}
    data = [model_view(alias, entry, now, callers.get(alias)) for alias, entry in config.models.items()]
    return {"object": "list", "from": v.iso(start), "to": v.iso(end), "data": data}
