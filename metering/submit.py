"""Submitting billable usage to the Marketplace: the hourly job, the flush on DELETE, the dry run.

Each run: recount recent hours of usage into the roll-up; for every account, roll events that can no
longer be sent in their hour, open events for the sendable hours that have none (ledger first, so a
crash leaves a pending event, never a lost or a double one), then send every open event younger than
the 24-hour window — new ones, pending ones and those that failed transiently before.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from core import metrics
from core.clock import utc_now
from core.hours import HOUR, floor_hour, hours_between
from core.hours import month_start as _month_start
from core.hours import previous_month_start as _previous_month_start
from core.tables import Tables
from limits.plans import PlanCatalog
from metering.ledger import OPEN, Account, Entry, Ledger, LedgerConflict, Status
from metering.marketplace_client import EventResult, MarketplaceClient, Outcome, UsageEvent
from metering.rollup import HourlyTotals, HourTotal, count_hours, merge_totals
from metering.submit_plan import AccountUsage, earliest_sendable, group_accounts, plan_openings
from provisioning.deployment_store import DeploymentStore
from provisioning.deployments import Deployment

RECOUNT_HOURS = 6
_CONFLICT_TRIES = 3

log = logging.getLogger("metering.submit")


@dataclass
class MeteringDeps:
    tables: Tables
    deployments: DeploymentStore
    plans: PlanCatalog
    client: MarketplaceClient | None = None
    clock: Callable[[], datetime] = utc_now
    # Usage records arriving later than this after their hour ends are not counted.
    recount_hours: int = RECOUNT_HOURS


@dataclass
class RunReport:
    dry_run: bool = False
    events: list[UsageEvent] = field(default_factory=list)
    results: list[EventResult] = field(default_factory=list)
    rolled: int = 0
    problems: list[str] = field(default_factory=list)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome is outcome)

    @property
    def exit_code(self) -> int:
        """0 all done; 1 events refused for good (or usage that cannot be billed); 3 retries pending."""
        if self.count(Outcome.ERROR) or self.problems:
            return 1
        return 3 if self.count(Outcome.RETRY) else 0

    def summary(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "events": len(self.events),
            **{outcome.value: self.count(outcome) for outcome in Outcome},
            "rolled": self.rolled,
            "mismatches": sum(1 for r in self.results if _mismatch(r)),
            "problems": self.problems,
        }


async def submit_due(deps: MeteringDeps, *, through: datetime | None = None, dry_run: bool = False) -> RunReport:
    """The hourly job: bill completed hours up to `through` (default: the last completed hour)."""
    now = deps.clock()
    last_complete = floor_hour(now) - HOUR
    last = last_complete if through is None else floor_hour(through)
    if last > last_complete:
        raise ValueError(f"{last:%Y-%m-%dT%H} has not ended; the last completed hour is {last_complete:%Y-%m-%dT%H}")
    totals = HourlyTotals(deps.tables)
    fresh = await _recount(deps, totals, last, now=now, dry_run=dry_run)
    if not dry_run:
        await totals.advance_watermark(last)
    return await _bill(deps, await deps.deployments.list_all(), last, now=now, fresh=fresh, dry_run=dry_run)


async def flush_deployment(deps: MeteringDeps, deployment_id: str) -> RunReport:
    """A deployment is going away: bill everything it used, the current partial hour included."""
    now = deps.clock()
    deployment = await deps.deployments.get(deployment_id)
    if deployment is None:
        return RunReport()
    current = floor_hour(now)
    fresh = await _recount(deps, HourlyTotals(deps.tables), current, now=now, dry_run=False, only=deployment_id)
    return await _bill(deps, [deployment], current, now=now, fresh=fresh, dry_run=False)


async def _recount(
    deps: MeteringDeps, totals: HourlyTotals, last: datetime, *, now: datetime, dry_run: bool,
    only: str | None = None,
) -> list[HourTotal]:
    watermark = await totals.watermark()
    first = last - (deps.recount_hours - 1) * HOUR
    # First run: the month so far, so that included tokens are counted; afterwards catch up from the watermark.
    first = min(first, _month_start(earliest_sendable(now)) if watermark is None else watermark + HOUR)
    fresh = await count_hours(deps.tables, first, last, deps.plans, deployment_id=only, repair=not dry_run)
    if not dry_run:
        for total in fresh:
            await totals.raise_to(total, now=now)
    return fresh


async def _bill(
    deps: MeteringDeps, deployments: Sequence[Deployment], last: datetime, *, now: datetime,
    fresh: Sequence[HourTotal], dry_run: bool,
) -> RunReport:
    report = RunReport(dry_run=dry_run)
    earliest = earliest_sendable(now)
    hours = hours_between(earliest, last)
    ledger: Ledger | _DryLedger = _DryLedger() if dry_run else Ledger(deps.tables)
    queued: list[tuple[Account, Entry]] = []
    for usage in await _account_usages(deps, deployments, earliest, last, fresh, report):
        queued.extend(await _prepare(deps, ledger, usage, hours, now=now, report=report))
    report.events = [_event(entry) for _, entry in queued]
    if dry_run or not queued:
        return report
    if deps.client is None:
        raise ValueError("submitting needs a MarketplaceClient")
    report.results = await deps.client.submit(report.events)
    metrics.current().marketplace_submissions(result.outcome.value for result in report.results)
    for (account, entry), result in zip(queued, report.results, strict=True):
        await _apply(ledger, account, entry, result, now=now, report=report)
    return report


async def _account_usages(
    deps: MeteringDeps, deployments: Sequence[Deployment], earliest: datetime, last: datetime,
    fresh: Sequence[HourTotal], report: RunReport,
) -> list[AccountUsage]:
    since = _previous_month_start(earliest)
    totals = HourlyTotals(deps.tables)
    usages: list[AccountUsage] = []
    for deployment in deployments:
        stored = await totals.rows(deployment.deployment_id, since, last)
        mine = [t for t in fresh if t.deployment_id == deployment.deployment_id and since <= t.hour <= last]
        rows = merge_totals(stored, mine)
        if not rows:
            continue
        if not deployment.resource_usage_id:
            _problem(report, f"deployment {deployment.deployment_id} has usage but no resourceUsageId; kept for later")
            continue
        accounts, unknown = group_accounts(deployment.resource_usage_id, rows, deps.plans)
        for plan_id in sorted(set(unknown)):
            _problem(report, f"plan {plan_id!r} of deployment {deployment.deployment_id} is not in the catalog")
        usages.extend(accounts)
    return usages


async def _prepare(
    deps: MeteringDeps, ledger: Ledger | _DryLedger, usage: AccountUsage, hours: Sequence[datetime], *,
    now: datetime, report: RunReport,
) -> list[tuple[Account, Entry]]:
    """Roll what is too old, open what is due; the open events to send. Re-reads after a conflict."""
    earliest = hours[0] if hours else earliest_sendable(now)
    for _ in range(_CONFLICT_TRIES):
        account = await Ledger(deps.tables).load(usage.resource_id, usage.dimension, earliest)
        try:
            for entry in [e for e in account.entries.values() if e.status in OPEN and e.hour < earliest]:
                account = await ledger.roll(account, entry, now=now, reason="older than 24 h before it was sent")
                report.rolled += 1
            for opening in plan_openings(account, usage, hours, now=now):
                account = await ledger.open_event(
                    account, opening.entry, assigned=opening.assigned, carry_tokens=opening.carry_tokens,
                    carry_after=opening.carry_after,
                )
        except LedgerConflict:
            log.info("ledger of %s/%s changed under this run; re-reading", usage.resource_id, usage.dimension)
            continue
        due = sorted((e for e in account.entries.values() if e.status in OPEN), key=lambda e: e.hour)
        return [(account, entry) for entry in due]
    _problem(report, f"gave up on {usage.resource_id}/{usage.dimension} after repeated concurrent changes")
    return []


async def _apply(
    ledger: Ledger | _DryLedger, account: Account, entry: Entry, result: EventResult, *, now: datetime,
    report: RunReport,
) -> None:
    sent = {"attempts": entry.attempts + 1, "sent_at": now, "updated_at": now}
    outcome = result.outcome
    if outcome is Outcome.EXPIRED:
        try:
            await ledger.roll(account, entry, now=now, reason=result.error or "Expired")
            report.rolled += 1
        except LedgerConflict:
            log.warning("could not roll the expired event of %s; it is tried again on the next run", _name(entry))
        return
    if outcome in (Outcome.ACCEPTED, Outcome.DUPLICATE):
        status = Status.ACCEPTED if outcome is Outcome.ACCEPTED else Status.DUPLICATE
        changes = {"status": status, "usage_event_id": result.usage_event_id, "last_error": None,
                   "accepted_quantity": result.accepted_quantity, "mismatch": _mismatch(result)}
        if _mismatch(result):
            log.error("duplicate %s: the Marketplace holds quantity %s, the ledger %s",
                      _name(entry), result.accepted_quantity, entry.quantity)
    else:
        status = Status.RETRY if outcome is Outcome.RETRY else Status.ERROR
        changes = {"status": status, "last_error": result.error}
        if status is Status.ERROR:
            log.error("Marketplace refused %s for good: %s", _name(entry), result.error)
    if await ledger.record(entry, **sent, **changes) is None:
        log.warning("event %s changed while it was being sent; kept the other run's outcome", _name(entry))


def _mismatch(result: EventResult) -> bool:
    return (
        result.outcome is Outcome.DUPLICATE
        and result.accepted_quantity is not None
        and result.accepted_quantity != result.event.quantity
    )


def _event(entry: Entry) -> UsageEvent:
    return UsageEvent(entry.resource_id, entry.dimension, entry.hour, entry.quantity, entry.plan_id)


def _name(entry: Entry) -> str:
    return f"{entry.resource_id}/{entry.dimension}@{entry.hour:%Y-%m-%dT%H}Z"


def _problem(report: RunReport, message: str) -> None:
    log.error("%s", message)
    report.problems.append(message)


class _DryLedger:
    """The ledger's writes applied to the in-memory account only: a dry run writes nothing."""

    async def open_event(
        self, account: Account, entry: Entry, *, assigned: Mapping[str, int], carry_tokens: int,
        carry_after: datetime | None,
    ) -> Account:
        account.assigned.update(assigned)
        account.carry_tokens, account.carry_after = carry_tokens, carry_after
        account.entries[entry.hour] = entry
        return account

    async def roll(self, account: Account, entry: Entry, *, now: datetime, reason: str) -> Account:
        account.carry_tokens += entry.tokens
        account.carry_after = max(entry.hour, account.carry_after or entry.hour)
        account.entries[entry.hour] = dataclasses.replace(entry, status=Status.EXPIRED_ROLLED, last_error=reason)
        return account

    async def record(self, entry: Entry, **changes: object) -> Entry | None:
        return entry
