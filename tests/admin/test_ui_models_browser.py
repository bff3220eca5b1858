"""The usage page's model lifecycle panel in headless Chromium (fixtures of test_ui_browser): loaded on request,
it shows each alias's status and dates and who still calls the deprecated ones, as text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from admin import model_handlers
from admin.service import AdminService
from proxy.upstreams import UpstreamsConfig
from tests.admin.conftest import admin_token
from tests.admin.test_model_callers import OPENAI, call
from tests.admin.test_ui_browser import PAGE, Seen, Watched, browser, site, wait_until_loaded, watched
from tests.admin.usage_seed import write

__all__ = ["browser", "site", "watched"]  # fixtures
pytestmark = pytest.mark.e2e
MARKUP_TEAM = "<b>bold</b>"


async def test_the_panel_lists_models_and_the_callers_of_deprecated_ones(
    site: tuple[str, Seen], watched: Watched, admin_service: AdminService, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    deprecated, sunset = now - timedelta(days=3), now + timedelta(days=60)
    config = UpstreamsConfig.model_validate({"models": {
        "old": {**OPENAI, "model": "old-model", "deprecated_at": deprecated.isoformat(),
                "sunset_at": sunset.isoformat(), "replacement": "new"},
        "new": {**OPENAI, "model": "new-model"},
    }})

    async def current() -> UpstreamsConfig:
        return config

    monkeypatch.setattr(model_handlers, "upstreams_config", current)
    await write(admin_service.tables, [
        call(now - timedelta(hours=3), "old", deployment="dep-7", index=0),
        call(now - timedelta(hours=2), "old", deployment="dep-7", index=1),
        call(now - timedelta(hours=2), "old", team=MARKUP_TEAM),
    ])
    base_url, seen = site
    page = watched.page
    await page.goto(f"{base_url}{PAGE}#access_token={admin_token()}")
    await wait_until_loaded(page, "the last 30 days")
    assert not [path for path, _, _ in seen.requests if path == "/api/admin/models"], "loaded only when asked"

    await page.click("#models-load")
    await page.wait_for_selector("#models tr[data-model='old']")
    rows = await page.eval_on_selector_all(
        "#models tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )
    assert rows == [
        ["old", "deprecated", deprecated.date().isoformat(), sunset.date().isoformat(), "new",
         f"dep-dep-7 (2), team-{MARKUP_TEAM} (1)"],
        ["new", "active", "", "", "", ""],
    ]
    assert await page.locator("#models b").count() == 0, "team names are text, never markup"
    assert ("/api/admin/models", "days=30", True) in seen.requests
    # The customers panel answers 503 here (no Marketplace deployments store): no script error besides.
    assert [e for e in watched.console_errors if "status of 503" not in e] == []
