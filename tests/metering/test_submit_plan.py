"""Planning events from the roll-up and the ledger: pure functions, no storage."""

from __future__ import annotations

from datetime import datetime

from core.hours import HOUR
from metering.ledger import Account, Entry, Status
from metering.rollup import HourTotal
from metering.submit_plan import Opening, earliest_sendable, group_accounts, plan_openings
from tests.metering.submit_support import CATALOG, DIMENSION, INCLUDED, PAYG, utc

NOW = utc(2026, 3, 10, 12, 5)
DEP = "dep"


def usage_of(*hour_tokens: tuple[datetime, int], plan_id: str = PAYG) -> list[HourTotal]:
    dimension = CATALOG.get(plan_id).dimension  # type: ignore[union-attr]
    return [HourTotal(DEP, plan_id, dimension or "", hour, tokens) for hour, tokens in hour_tokens]


def plan(account: Account, totals: list[HourTotal], hours: list[datetime]) -> list[Opening]:
    accounts, unknown = group_accounts("R", totals, CATALOG)
    assert unknown == [] and len(accounts) == 1
    return plan_openings(account, accounts[0], hours, now=NOW)


def test_earliest_sendable_stays_inside_the_window() -> None:
    assert earliest_sendable(utc(2026, 3, 10, 12, 5)) == utc(2026, 3, 9, 13)
    assert earliest_sendable(utc(2026, 3, 10, 12, 49)) == utc(2026, 3, 9, 13)
    # 13:00 yesterday expires at 13:00 today: less than the 10-minute margin away.
    assert earliest_sendable(utc(2026, 3, 10, 12, 50)) == utc(2026, 3, 9, 14)


def test_each_hour_bills_its_own_overage() -> None:
    h = [utc(2026, 3, 10, 9) + i * HOUR for i in range(3)]
    openings = plan(Account("R", DIMENSION), usage_of((h[0], 9_000), (h[1], 1_500), (h[2], 250)), h)
    assert [(o.entry.hour, o.entry.tokens, str(o.entry.quantity)) for o in openings] == [
        (h[1], 500, "0.500000"),
        (h[2], 250, "0.250000"),
    ]
    assert openings[-1].assigned == {f"202603|{DEP}|{PAYG}": 750}


def test_what_is_already_assigned_is_not_billed_again() -> None:
    hour = utc(2026, 3, 10, 11)
    account = Account("R", DIMENSION, assigned={f"202603|{DEP}|{PAYG}": 700})
    assert [o.entry.tokens for o in plan(account, usage_of((hour, INCLUDED + 1_000)), [hour])] == [300]


def test_carry_only_goes_into_hours_after_its_own() -> None:
    rolled_at = utc(2026, 3, 10, 8)
    account = Account("R", DIMENSION, carry_tokens=2_000, carry_after=rolled_at)
    account.entries[rolled_at] = Entry("R", DIMENSION, rolled_at, PAYG, 2_000, quantity=2, status=Status.EXPIRED_ROLLED)  # type: ignore[arg-type]
    hours = [utc(2026, 3, 10, 6) + i * HOUR for i in range(5)]  # 06 .. 10
    openings = plan(account, usage_of((utc(2026, 3, 10, 6), INCLUDED)), hours)
    assert [(o.entry.hour, o.entry.tokens, o.carry_tokens) for o in openings] == [(utc(2026, 3, 10, 9), 2_000, 0)]


def test_a_remainder_waits_for_a_later_hour() -> None:
    h = [utc(2026, 3, 10, 10), utc(2026, 3, 10, 11)]
    openings = plan(Account("R", "tokens_3"), usage_of((h[0], 10), (h[1], 2), plan_id="thirds"), h)
    assert [(o.entry.tokens, o.carry_tokens, o.carry_after) for o in openings] == [(9, 1, h[0]), (3, 0, h[0])]


def test_unknown_plans_are_reported() -> None:
    totals = [HourTotal(DEP, "gone", DIMENSION, utc(2026, 3, 10, 10), 5)]
    assert group_accounts("R", totals, CATALOG) == ([], ["gone"])
