"""Which events to open, and with how many tokens: pure functions over the roll-up and the ledger.

An account (resourceId, dimension) is fed by plan-months ("meters") of its deployment. For each meter
the ledger remembers how much of its overage is already in events (`assigned`). An event for hour H
takes, from every meter, its overage through H minus what is already assigned, plus the carry (tokens
of rolled events and sub-unit remainders) when H is later than the hour the carry came from. So each
hour bills its own overage; hours nobody sent in time, late usage and rolled events all land in the
next event; and the sum of all events is the overage, to the token.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core.hours import HOUR, floor_hour
from limits.plans import Plan, PlanCatalog
from metering.ledger import Account, Entry, meter_month_key
from metering.rollup import HourTotal, billable_through, quantity_for

WINDOW = timedelta(hours=24)
# Marketplace refuses effectiveStartTime older than 24 h; stay clear of the edge while in flight.
SEND_MARGIN = timedelta(minutes=10)


def earliest_sendable(now: datetime) -> datetime:
    """The oldest hour whose start is still comfortably inside the Marketplace's 24-hour window."""
    return floor_hour(now - WINDOW + SEND_MARGIN) + HOUR


@dataclass(frozen=True)
class Meter:
    key: str
    plan: Plan
    hours: tuple[tuple[datetime, int], ...]

    def billable_through(self, hour: datetime) -> int:
        return billable_through(self.hours, self.plan.monthly_included_tokens or 0, hour)


@dataclass
class AccountUsage:
    """The roll-up rows feeding one (resourceId, dimension)."""

    resource_id: str
    dimension: str
    meters: list[Meter] = field(default_factory=list)
    plan_hours: list[tuple[datetime, Plan]] = field(default_factory=list)

    def plan_at(self, hour: datetime) -> Plan:
        """The plan billed for `hour`: the one in use then, else the latest one seen."""
        earlier = [(h, p) for h, p in self.plan_hours if h <= hour]
        return max(earlier or self.plan_hours, key=lambda hp: hp[0])[1]


@dataclass(frozen=True)
class Opening:
    entry: Entry
    assigned: Mapping[str, int]
    carry_tokens: int
    carry_after: datetime | None


def group_accounts(
    resource_id: str, totals: Iterable[HourTotal], catalog: PlanCatalog
) -> tuple[list[AccountUsage], list[str]]:
    """One deployment's roll-up rows as accounts; also the plans no longer in the catalog."""
    by_meter: dict[tuple[str, str, str], list[HourTotal]] = defaultdict(list)
    for total in totals:
        by_meter[(total.dimension, f"{total.hour:%Y%m}", total.plan_id)].append(total)
    accounts: dict[str, AccountUsage] = {}
    unknown: list[str] = []
    for (dimension, month, plan_id), rows in sorted(by_meter.items()):
        plan = catalog.get(plan_id)
        if plan is None:
            unknown.append(plan_id)
            continue
        account = accounts.setdefault(dimension, AccountUsage(resource_id, dimension))
        key = meter_month_key(month, rows[0].deployment_id, plan_id)
        account.meters.append(Meter(key, plan, tuple((r.hour, r.tokens) for r in rows)))
        account.plan_hours.extend((r.hour, plan) for r in rows if r.tokens > 0)
    return [a for a in accounts.values() if a.plan_hours], unknown


def plan_openings(
    account: Account, usage: AccountUsage, hours: Sequence[datetime], *, now: datetime
) -> list[Opening]:
    """Events to open for the given hours (ascending) that have none yet."""
    assigned = dict(account.assigned)
    carry, carry_after = account.carry_tokens, account.carry_after
    openings: list[Opening] = []
    for hour in hours:
        if hour in account.entries:
            continue
        draws = {m.key: b for m in usage.meters if (b := m.billable_through(hour)) > assigned.get(m.key, 0)}
        usable_carry = carry if carry_after is None or hour > carry_after else 0
        outstanding = usable_carry + sum(b - assigned.get(key, 0) for key, b in draws.items())
        if outstanding <= 0:
            continue
        plan = usage.plan_at(hour)
        quantity, covered = quantity_for(outstanding, plan.dimension_unit_tokens)
        if covered == 0:
            continue
        entry = Entry(
            resource_id=usage.resource_id, dimension=usage.dimension, hour=hour, plan_id=plan.plan_id,
            tokens=covered, quantity=quantity, created_at=now, updated_at=now,
        )
        carry = carry - usable_carry + outstanding - covered
        carry_after = max(hour, carry_after or hour) if carry else carry_after
        assigned.update(draws)
        openings.append(Opening(entry, draws, carry, carry_after))
    return openings
