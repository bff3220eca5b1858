"""Hourly aggregates summed per period (UTC day or hour) and chosen group columns. Pure: no I/O.

The operators' usage report (admin.usage_report) and the customers' own view (usage.month_to_date) both sum
with this, so the two count alike by construction. Cost: one dictionary update per aggregate row.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from usage.groups import GROUP_COLUMNS, Group, matches
from usage.reader import HourAggregate

# (period, values of the columns) -> counters. Tuples, not lists: a month of sums held in memory is then mostly
# objects the garbage collector stops tracking, so its full collections do not slow down with it.
Sums = dict[tuple[datetime, tuple[str | None, ...]], tuple[int, ...]]

_DEPLOYMENT, _TEAM = GROUP_COLUMNS.index("deployment_id"), GROUP_COLUMNS.index("team")


def sum_aggregates(
    aggregates: Iterable[HourAggregate], columns: Sequence[str], *, daily: bool,
    filters: Mapping[str, str] | None = None, into: Sums | None = None,
) -> Sums:
    """Counters per (period, the group's values of `columns`); `filters`: usage column -> exact value."""
    indexes = [GROUP_COLUMNS.index(column) for column in columns]
    whole = indexes == list(range(len(GROUP_COLUMNS)))
    sums: Sums = {} if into is None else into
    periods = _Periods(daily)
    for row in aggregates:
        if filters and not matches(row.group, filters):
            continue
        values = row.group if whole else tuple(row.group[index] for index in indexes)
        _add(sums, (periods.of(row.hour), values), row.counters)
    return sums


def sum_by_owner(
    aggregates: Iterable[HourAggregate], *, into: dict[str, Sums], groups: dict[Group, Group] | None = None,
) -> dict[str, Sums]:
    """As sum_aggregates(columns=GROUP_COLUMNS, daily=True), one Sums per owner (owner_of), in one pass.
    `groups` keeps one copy of each group for sums held long: every hour read brings its own."""
    periods = _Periods(daily=True)
    for row in aggregates:
        group = row.group if groups is None else groups.setdefault(row.group, row.group)
        owner = owner_of(group)
        sums = into.get(owner)
        if sums is None:
            sums = into[owner] = {}
        _add(sums, (periods.of(row.hour), group), row.counters)
    return into


def merge_sums(into: Sums, other: Sums) -> Sums:
    for key, counters in other.items():
        _add(into, key, counters)
    return into


def owner_of(group: Group) -> str:
    """The account a group's calls drew on, as keystore.principal.Principal.owner names it: "dep-…" or "team-…"."""
    deployment = group[_DEPLOYMENT]
    return f"dep-{deployment}" if deployment else f"team-{group[_TEAM]}"


def _add(sums: Sums, key: tuple[datetime, tuple[str | None, ...]], counters: tuple[int, ...]) -> None:
    current = sums.get(key)
    sums[key] = counters if current is None else tuple(map(operator.add, current, counters))


class _Periods:
    """The period an hour falls in, computed once per hour."""

    def __init__(self, daily: bool) -> None:
        self._daily = daily
        self._seen: dict[datetime, datetime] = {}

    def of(self, hour: datetime) -> datetime:
        period = self._seen.get(hour)
        if period is None:
            period = self._seen[hour] = hour.replace(hour=0) if self._daily else hour
        return period
