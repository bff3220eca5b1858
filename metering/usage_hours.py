"""The hourly usage roll-up table (`usagehours`): what the admin usage report reads instead of raw usage.

Layout:
- PartitionKey = "{YYYYMMDDHH}" (UTC hour), RowKey = "{team}|{deployment}|{plan}|{model}|{key}", each part
  `rollup.table_key` of the value and "~" for a missing one (no real value maps to "~"). Properties: the
  group values themselves (a missing one omitted, as in usage rows) and COUNTERS as Int64.
- PartitionKey "~rollup" (sorts after every hour):
  - RowKey "h|{YYYYMMDDHH}": the hour was rolled up at `rolled_at` (`groups` rows, `requests` in all).
  - RowKey "watermark": `hour`, the last completed hour rolled up; `final_before`, the first hour that a
    later run may still recount. Hours before it that have an "h|" row are final: a report may read them.

Only request metadata is stored, as in usage rows: never prompt text, output, IP addresses or headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from core.hours import hour_key, parse_hour_key
from core.tables import Tables, int64, int_value, rows_of, storage_errors, table_key

# The usage columns a roll-up row groups on, in RowKey order.
GROUP_COLUMNS = ("team", "deployment_id", "plan_id", "model_alias", "key_id")
TOKEN_COUNTERS = ("prompt_tokens", "cached_tokens", "completion_tokens", "total_tokens", "plan_tokens")
COUNTERS = ("requests", "errors", *TOKEN_COUNTERS, "estimated_requests")
# The usage columns counting needs.
USAGE_COLUMNS = ("status", "estimated", *TOKEN_COUNTERS)

RESERVED = "~rollup"
_WATERMARK = "watermark"
_MISSING = "~"
_TRANSACTION_MAX = 100

Group = tuple[str | None, ...]  # values of GROUP_COLUMNS
Counts = dict[Group, list[int]]  # group -> counters in COUNTERS order


def zero() -> list[int]:
    return [0] * len(COUNTERS)


def add_usage(counters: list[int], row: Mapping[str, Any]) -> None:
    """Count one raw usage row."""
    counters[0] += 1
    counters[1] += int_value(row.get("status")) >= 400
    for index, name in enumerate(TOKEN_COUNTERS, start=2):
        counters[index] += int_value(row.get(name))
    counters[-1] += bool(row.get("estimated"))


def add_rolled(counters: list[int], row: Mapping[str, Any]) -> None:
    """Add one roll-up row's counters."""
    for index, name in enumerate(COUNTERS):
        counters[index] += int_value(row.get(name))


def group_row_key(group: Group) -> str:
    return "|".join(_MISSING if value is None else table_key(value) for value in group)


def group_entity(hour: datetime, group: Group, counters: list[int]) -> dict[str, Any]:
    entity: dict[str, Any] = {"PartitionKey": hour_key(hour), "RowKey": group_row_key(group)}
    entity.update({name: value for name, value in zip(GROUP_COLUMNS, group, strict=True) if value is not None})
    entity.update({name: int64(value) for name, value in zip(COUNTERS, counters, strict=True)})
    return entity


@dataclass(frozen=True)
class RollupState:
    hour: datetime  # the last completed hour rolled up
    final_before: datetime  # hours before this one are not recounted any more

    def merged(self, other: RollupState | None) -> RollupState:
        if other is None:
            return self
        return RollupState(max(self.hour, other.hour), max(self.final_before, other.final_before))


class UsageHours:
    def __init__(self, tables: Tables) -> None:
        self.table: TableClient = tables.table("usagehours")

    async def write_hour(self, hour: datetime, counts: Counts, *, now: datetime) -> None:
        """Replace the hour's rows with these counts, then mark the hour rolled up (so a crash in between
        leaves the hour unmarked, or marked by an earlier complete count)."""
        entities = [group_entity(hour, group, counters) for group, counters in counts.items()]
        with storage_errors():
            for start in range(0, len(entities), _TRANSACTION_MAX):
                chunk = entities[start : start + _TRANSACTION_MAX]
                await self.table.submit_transaction([("upsert", e, {"mode": UpdateMode.REPLACE}) for e in chunk])
            await self.table.upsert_entity(
                {
                    "PartitionKey": RESERVED, "RowKey": f"h|{hour_key(hour)}", "rolled_at": now,
                    "groups": len(entities), "requests": int64(sum(c[0] for c in counts.values())),
                },
                mode=UpdateMode.REPLACE,
            )

    async def state(self) -> RollupState | None:
        with storage_errors():
            try:
                entity = await self.table.get_entity(RESERVED, _WATERMARK)
            except ResourceNotFoundError:
                return None
        return RollupState(parse_hour_key(entity["hour"]), parse_hour_key(entity["final_before"]))

    async def save_state(self, state: RollupState, *, now: datetime) -> None:
        with storage_errors():
            await self.table.upsert_entity(
                {
                    "PartitionKey": RESERVED, "RowKey": _WATERMARK, "hour": hour_key(state.hour),
                    "final_before": hour_key(state.final_before), "updated_at": now,
                },
                mode=UpdateMode.REPLACE,
            )

    async def final_hours(self, first: datetime, end: datetime) -> set[datetime]:
        """Hours in [first, end) whose roll-up is final; none when the roll-up never ran."""
        state = await self.state()
        if state is None or min(end, state.final_before) <= first:
            return set()
        query = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"
        params = {"pk": RESERVED, "lo": f"h|{hour_key(first)}", "hi": f"h|{hour_key(min(end, state.final_before))}"}
        return {parse_hour_key(row["RowKey"][2:]) async for row in rows_of(self.table, query, params, ["RowKey"])}

    async def rolled_at(self, hour: datetime) -> datetime | None:
        with storage_errors():
            try:
                entity = await self.table.get_entity(RESERVED, f"h|{hour_key(hour)}")
            except ResourceNotFoundError:
                return None
        rolled: datetime = entity["rolled_at"]
        return rolled
