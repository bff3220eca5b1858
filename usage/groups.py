"""What usage is aggregated by, and how: groups, counters, and their Table row keys. Pure: no I/O.

A group is one combination of GROUP_COLUMNS; its counters (COUNTERS order) count requests, errors
(status >= 400), tokens, estimated requests, reasoning tokens, media units (one counter per unit), calls
that chose their model in auto mode and calls served with the customer's own provider key (BYOK). Counters added
later come last: a row written before has fewer, read as 0.
Counting a raw usage row and counting the UsageRecord it came from give the same counters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from core.tables import int_value, table_key
from usage.records import UsageRecord

# The usage columns an aggregate groups on, in RowKey order.
GROUP_COLUMNS = ("team", "deployment_id", "plan_id", "model_alias", "key_id")
TOKEN_COUNTERS = ("prompt_tokens", "cached_tokens", "completion_tokens", "total_tokens", "plan_tokens")
# A media call's unit (UsageRecord.unit) -> the counter its quantity adds to.
UNITS = {"image": "images", "audio_second": "audio_seconds", "character": "characters"}
COUNTERS = (
    "requests", "errors", *TOKEN_COUNTERS, "estimated_requests",
    "reasoning_tokens", *UNITS.values(), "auto_requests", "byok_requests",
)
# The raw usage columns counting needs.
USAGE_COLUMNS = ("status", "estimated", *TOKEN_COUNTERS, "reasoning_tokens", "unit", "quantity", "auto", "byok")
REQUESTS = COUNTERS.index("requests")
_REASONING = COUNTERS.index("reasoning_tokens")
_UNIT_INDEX = {unit: COUNTERS.index(counter) for unit, counter in UNITS.items()}
_AUTO, _BYOK = COUNTERS.index("auto_requests"), COUNTERS.index("byok_requests")

_MISSING = "~"

Group = tuple[str | None, ...]  # values of GROUP_COLUMNS
Counts = dict[Group, list[int]]  # group -> counters in COUNTERS order


def zero() -> list[int]:
    return [0] * len(COUNTERS)


def group_of(record: UsageRecord) -> Group:
    return (record.team, record.deployment_id, record.plan_id, record.model_alias, record.key_id)


def group_of_row(row: Mapping[str, Any]) -> Group:
    return tuple(row.get(column) for column in GROUP_COLUMNS)


def add_record(counters: list[int], record: UsageRecord) -> None:
    counters[0] += 1
    counters[1] += record.status >= 400
    counters[2] += record.prompt_tokens
    counters[3] += record.cached_tokens
    counters[4] += record.completion_tokens
    counters[5] += record.total_tokens
    counters[6] += record.plan_tokens
    counters[7] += record.estimated
    _add_later(counters, record.reasoning_tokens, record.unit, record.quantity, record.auto, record.byok)


def _add_later(counters: list[int], reasoning: int, unit: object, quantity: int, auto: bool, byok: bool) -> None:
    counters[_REASONING] += reasoning
    index = _UNIT_INDEX.get(unit) if isinstance(unit, str) else None
    if index is not None:
        counters[index] += quantity
    counters[_AUTO] += auto
    counters[_BYOK] += byok


def add_usage(counters: list[int], row: Mapping[str, Any]) -> None:
    """Count one raw usage row (as read back from the table)."""
    counters[0] += 1
    counters[1] += int_value(row.get("status")) >= 400
    for index, name in enumerate(TOKEN_COUNTERS, start=2):
        counters[index] += int_value(row.get(name))
    counters[7] += bool(row.get("estimated"))
    reasoning, quantity = int_value(row.get("reasoning_tokens")), int_value(row.get("quantity"))
    _add_later(counters, reasoning, row.get("unit"), quantity, bool(row.get("auto")), bool(row.get("byok")))


def add_counters(counters: list[int], other: Iterable[int]) -> None:
    for index, value in enumerate(other):
        counters[index] += value


def counters_of(row: Mapping[str, Any]) -> list[int]:
    """An aggregate row's counters."""
    return [int_value(row.get(name)) for name in COUNTERS]


def count_records(records: Iterable[UsageRecord]) -> Counts:
    counts: Counts = {}
    for record in records:
        group = group_of(record)
        counters = counts.get(group)
        if counters is None:
            counters = counts[group] = zero()
        add_record(counters, record)
    return counts


def group_key(group: Group) -> str:
    """The group as a Table key component: each value `table_key`ed, "~" for a missing one, "|"-joined."""
    return "|".join(_MISSING if value is None else table_key(value) for value in group)


def group_order(group: Group) -> tuple[tuple[bool, str], ...]:
    """Sort key: by each value, a missing value first."""
    return tuple((value is not None, value or "") for value in group)


def matches(group: Group, filters: Mapping[str, str]) -> bool:
    """filters: usage column -> exact value."""
    return all(group[GROUP_COLUMNS.index(column)] == value for column, value in filters.items())
