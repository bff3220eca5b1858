"""proxy.account and proxy.account_view without storage: overage as metering's own arithmetic bills it, and an
owner's keys and balance loaded once per TTL for all its callers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keystore.models import KeyRecord, KeyStatus
from keystore.principal import Principal
from limits.balance import BalanceState
from limits.plans import Plan, PlanCatalog
from metering.submit_plan import Meter
from proxy.account import OWNER_TTL_SECONDS, AccountUsage
from proxy.account_view import overage_tokens
from usage.month_to_date import MonthToDate
from usage.reader import HourAggregate

CATALOG = PlanCatalog.load("config/plans.json")
NOW = datetime(2031, 5, 17, 9, 45, tzinfo=UTC)
PRINCIPAL = Principal(key_id="k1", key_prefix="lt-abcdef", key_hash="0" * 64, team="acme", plan_id="prepaid")


@given(
    st.sampled_from(CATALOG.plans),
    st.lists(st.tuples(st.integers(0, 30 * 24), st.integers(0, 3_000_000)), max_size=40),
)
def test_overage_is_what_metering_bills_for_the_plan_month(plan: Plan, hours: list[tuple[int, int]]) -> None:
    month = datetime(2031, 5, 1, tzinfo=UTC)
    rows = tuple((month + timedelta(hours=h), tokens) for h, tokens in hours)
    used = sum(tokens for _, tokens in rows)
    billed = Meter("m", plan, rows).billable_through(month + timedelta(days=31))
    # metering.rollup.count_hours keeps only plans that bill overage through a dimension
    assert overage_tokens(plan, used) == (billed if plan.overage == "bill" and plan.dimension else 0)


def test_a_plan_no_longer_in_the_catalog_bills_nothing() -> None:
    assert overage_tokens(None, 10**9) == 0


class Fakes:
    def __init__(self) -> None:
        self.listed = 0
        self.balances = 0
        self.mono = 0.0
        self.fail = False

    async def list_for_owner(self, *, deployment_id: str | None = None, team: str | None = None) -> list[KeyRecord]:
        self.listed += 1
        await asyncio.sleep(0.01)
        if self.fail:
            raise ConnectionError("storage unreachable")
        return [KeyRecord(key_hash="0" * 64, key_id="k1", prefix="lt-abcdef", team=str(team), description="",
                          status=KeyStatus.ACTIVE, created_at=NOW)]

    async def balance(self, owner: str) -> BalanceState:
        self.balances += 1
        return BalanceState(available=42)

    async def read(self, first: datetime, end: datetime) -> list[HourAggregate]:
        return []

    def service(self) -> AccountUsage:
        month = MonthToDate(read=self.read, now=lambda: NOW, clock=lambda: self.mono)
        return AccountUsage(month=month, plans=CATALOG.get, keys=self, balance=self.balance, clock=lambda: self.mono)


async def test_callers_of_one_owner_share_one_load_per_ttl() -> None:
    fakes = Fakes()
    service = fakes.service()
    answers = await asyncio.gather(*(service.summary(PRINCIPAL) for _ in range(20)))
    assert (fakes.listed, fakes.balances) == (1, 1)
    assert all(a["prepaid_balance"] == {"available_tokens": 42, "reserved_tokens": 0} for a in answers)
    fakes.mono += OWNER_TTL_SECONDS - 0.01
    await service.summary(PRINCIPAL)
    assert fakes.listed == 1
    fakes.mono += 0.01
    await service.summary(PRINCIPAL)
    assert fakes.listed == 2


async def test_a_failed_load_reaches_its_callers_and_is_not_kept() -> None:
    fakes = Fakes()
    service = fakes.service()
    fakes.fail = True
    results = await asyncio.gather(*(service.summary(PRINCIPAL) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results) and fakes.listed == 1
    fakes.fail = False
    assert (await service.summary(PRINCIPAL))["keys"][0]["id"] == "k1"
    assert fakes.listed == 2


async def test_an_unknown_plan_is_refused_like_the_proxy_does() -> None:
    fakes = Fakes()
    lost = Principal(key_id="k", key_prefix="lt-abcdef", key_hash="0" * 64, team="acme", plan_id="retired")
    with pytest.raises(Exception, match="plan is not available") as raised:
        await fakes.service().summary(lost)
    assert getattr(raised.value, "status_code", None) == 403
