"""Admin adapter on the "teams" table (same rows as keystore.teams): create, page, conditional update."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from core.errors import Conflict, InvalidRequest, ServiceUnavailable
from core.tables import Tables, storage_errors
from keystore.teams import ROW, Team, team_from_entity, team_to_entity

_MAX_TOKEN_CHARS = 2048
_MAX_CAS_ATTEMPTS = 10


@dataclass(frozen=True)
class TeamPage:
    teams: list[Team]
    next_token: str | None


def encode_token(continuation: Any) -> str | None:
    if not continuation:
        return None
    return base64.urlsafe_b64encode(json.dumps(continuation, sort_keys=True).encode()).decode()


def decode_token(token: str | None) -> dict[str, str] | None:
    if token is None:
        return None
    bad = InvalidRequest("Invalid continuation token.", param="continuation_token")
    if len(token) > _MAX_TOKEN_CHARS:
        raise bad
    try:
        value = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        raise bad from None
    if not isinstance(value, dict) or not value or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise bad
    return value


class AdminTeamStore:
    def __init__(self, tables: Tables) -> None:
        self._table = tables.table("teams")

    async def create(self, team: Team) -> None:
        try:
            with storage_errors():
                await self._table.create_entity(team_to_entity(team))
        except ResourceExistsError:
            raise Conflict(f"Team {team.team} already exists.", param="team") from None

    async def get(self, name: str) -> Team | None:
        try:
            with storage_errors():
                entity = await self._table.get_entity(name, ROW)
        except ResourceNotFoundError:
            return None
        return team_from_entity(entity)

    async def page(self, *, size: int, token: str | None) -> TeamPage:
        continuation = decode_token(token)
        with storage_errors():
            query: Any = self._table.query_entities(
                "RowKey eq @row", parameters={"row": ROW}, results_per_page=size
            )
            # The Tables SDK's continuation token is a dict of next PartitionKey/RowKey.
            pages: Any = query.by_page(continuation_token=continuation)
            teams: list[Team] = []
            async for page in pages:
                teams = [team_from_entity(e) async for e in page]
                break
            next_token = encode_token(pages.continuation_token)
        return TeamPage(teams=teams, next_token=next_token)

    async def update(self, name: str, change: Callable[[Team], Team | None]) -> Team | None:
        """Applies `change` under an ETag; None when the team does not exist."""
        for _ in range(_MAX_CAS_ATTEMPTS):
            try:
                with storage_errors():
                    entity = await self._table.get_entity(name, ROW)
            except ResourceNotFoundError:
                return None
            current = team_from_entity(entity)
            updated = change(current)
            if updated is None:
                return current
            try:
                with storage_errors():
                    await self._table.update_entity(
                        team_to_entity(updated),
                        mode=UpdateMode.MERGE,
                        etag=entity.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
            except (ResourceModifiedError, ResourceNotFoundError):
                continue
            return updated
        raise ServiceUnavailable("The team record is busy; retry.", code="team_contended")
