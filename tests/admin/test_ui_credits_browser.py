"""The usage page's prepaid credit panel in headless Chromium (fixtures of test_ui_browser): loaded on request, it
shows each owner's balance and the credit expiring within 30 days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from admin.service import AdminService
from limits.balance import PrepaidBalances
from limits.limiter import BALANCE_TABLE
from limits.lots import TopUp
from tests.admin.conftest import admin_token
from tests.admin.test_ui_browser import PAGE, Seen, Watched, browser, site, wait_until_loaded, watched

__all__ = ["browser", "site", "watched"]  # fixtures
pytestmark = pytest.mark.e2e
TEAM = "ui-credits"


async def test_the_panel_lists_balances_and_credit_expiring_soon(
    site: tuple[str, Seen], watched: Watched, admin_service: AdminService
) -> None:
    now = datetime.now(UTC)
    soon, later = now + timedelta(days=10), now + timedelta(days=200)
    balances = PrepaidBalances(admin_service.tables.table(BALANCE_TABLE))
    await balances.top_up(f"team-{TEAM}", TopUp(5_000, soon, lot_id="ui-1"))
    await balances.top_up(f"team-{TEAM}", TopUp(7_000, later, lot_id="ui-2"))
    await balances.top_up(f"team-{TEAM}", TopUp(300, soon, model="gpt-4o", lot_id="ui-3"))
    base_url, seen = site
    page = watched.page
    await page.goto(f"{base_url}{PAGE}#access_token={admin_token()}")
    await wait_until_loaded(page, "the last 30 days")
    assert not [path for path, _, _ in seen.requests if path == "/api/admin/credits"], "loaded only when asked"

    await page.click("#credits-load")
    await page.wait_for_selector("#credits tbody tr[data-owner]")
    rows = await page.eval_on_selector_all(
        "#credits tbody tr[data-owner]", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )
    mine = [row for row in rows if row[0] == f"team-{TEAM}"]
    assert len(mine) == 1
    _, available, held, shortfall, expiring = mine[0]
    assert (available, held, shortfall) == ("12,300", "0", "0")
    day = soon.date().isoformat()
    assert sorted(expiring.split(", ")) == [f"300 on {day} (gpt-4o pack)", f"5,000 on {day}"]  # not the 200-day lot
    assert [e for e in watched.console_errors if "status of 503" not in e] == []
