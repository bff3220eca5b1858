"""Teams: who owns operator-minted keys, on which internal plan, and whether they are suspended.

Table "teams": PartitionKey = team name, RowKey = "team". Marketplace deployments are not teams:
their plan comes from the deployment record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from core.tables import Tables, storage_errors
from keystore.entities import optional_utc


@dataclass(frozen=True)
class Team:
    team: str
    plan_id: str
    status: str = "active"
    description: str = ""
    created_at: datetime | None = None

    @property
    def suspended(self) -> bool:
        return self.status == "suspended"


ROW = "team"


def team_from_entity(entity: Any) -> Team:
    return Team(
        team=entity["PartitionKey"],
        plan_id=entity.get("plan_id", ""),
        status=entity.get("status", "active"),
        description=entity.get("description", ""),
        created_at=optional_utc(entity.get("created_at")),
    )


def team_to_entity(team: Team) -> dict[str, Any]:
    return {
        "PartitionKey": team.team,
        "RowKey": ROW,
        "plan_id": team.plan_id,
        "status": team.status,
        "description": team.description,
        "created_at": team.created_at or datetime.now(UTC),
    }


class TeamStore:
    def __init__(self, tables: Tables) -> None:
        self._table = tables.table("teams")

    async def get(self, team: str) -> Team | None:
        with storage_errors():
            try:
                entity = await self._table.get_entity(team, ROW)
            except ResourceNotFoundError:
                return None
        return team_from_entity(entity)

    async def put(self, team: Team) -> None:
        with storage_errors():
            await self._table.upsert_entity(team_to_entity(team))
