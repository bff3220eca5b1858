"""The usage page in headless Chromium: Debian's browser driven by the PyPI playwright package, against the
real admin, report and page handlers under uvicorn on loopback, over Azurite tables seeded with usage and
ledger rows. `make unit` installs Chromium (`make chromium`); without it these tests fail, never skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.async_api import Browser, Page, ViewportSize, async_playwright
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from admin import handlers
from admin.report_handlers import REPORT_ROUTES
from admin.routes import ADMIN_ROUTES
from admin.service import AdminService
from localdev.standin.server import base_url_of, bind
from tests.admin import ui_seed as seed
from tests.admin.conftest import admin_token

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling Google's hosts, which this network refuses.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 1000}
PAGE = "/api/admin/ui"


@dataclass
class Seen:
    """What the server saw: every request's path and query, and whether it carried a bearer token."""

    requests: list[tuple[str, str, bool]] = field(default_factory=list)

    def middleware(self, app: ASGIApp) -> ASGIApp:
        async def record(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                headers = dict(scope["headers"])
                authorized = headers.get(b"authorization", b"").startswith(b"Bearer ")
                self.requests.append((scope["path"], scope["query_string"].decode(), authorized))
            await app(scope, receive, send)

        return record


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # pytest owns the process's signal handlers


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: run `make chromium` (apt-get install chromium) before these tests.")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def site(admin_service: AdminService, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[str, Seen]]:
    """uvicorn in the test's own event loop: the admin service's Azure clients belong to that loop."""

    async def current() -> AdminService:
        return admin_service

    monkeypatch.setattr(handlers, "get_admin_service", current)
    table = {route: (methods, handler) for route, methods, handler in (*ADMIN_ROUTES, *REPORT_ROUTES)}
    app = Starlette(routes=[Route("/" + r, h, methods=list(m)) for r, (m, h) in table.items()])
    seen = Seen()
    sock = bind("127.0.0.1", 0)
    server = _Server(uvicorn.Config(seen.middleware(app), lifespan="off", log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.01)
    try:
        yield base_url_of(sock), seen
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


@dataclass
class Watched:
    page: Page
    console_errors: list[str] = field(default_factory=list)
    request_urls: list[str] = field(default_factory=list)


@pytest.fixture
async def watched(browser: Browser) -> AsyncIterator[Watched]:
    context = await browser.new_context(viewport=VIEWPORT, device_scale_factor=1, accept_downloads=True)
    page = await context.new_page()
    watched = Watched(page)
    page.on("console", lambda m: watched.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: watched.console_errors.append(str(error)))
    page.on("request", lambda request: watched.request_urls.append(request.url))
    try:
        yield watched
    finally:
        await context.close()


@pytest.fixture
async def seeded(admin_service: AdminService) -> tuple[datetime, list[Any]]:
    now = datetime.now(UTC)
    records = seed.usage_records(now)
    await seed.seed_usage(admin_service.tables, records)
    await seed.seed_ledger(admin_service.tables, now)
    await seed.seed_refusals(admin_service.tables, now)
    admin_service.deployments = seed.admin_deployments(admin_service)
    await seed.seed_deployment(admin_service.tables, now)
    return now, records


async def wait_until_loaded(page: Page, label: str) -> None:
    await page.wait_for_function(
        "label => document.getElementById('status').textContent.includes(label + ' (UTC), updated')", arg=label,
    )


async def segments(page: Page, chart: str) -> dict[tuple[str, str], int]:
    found = await page.eval_on_selector_all(
        f"#{chart} rect.bar", "bars => bars.map(b => [b.dataset.series, b.dataset.period, Number(b.dataset.value)])"
    )
    result = {(name, period): value for name, period, value in found}
    assert len(result) == len(found), "one bar segment per series and period"
    return result


async def legend(page: Page, chart: str) -> list[str]:
    names: list[str] = await page.eval_on_selector_all(
        f"#{chart} .legend li", "items => items.map(i => i.dataset.series)"
    )
    return names


def number(text: str) -> int:
    return int(text.replace(",", ""))


@pytest.fixture
def tmp_screens(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "screens"
    folder.mkdir()
    yield folder


async def test_the_page_shows_the_seeded_usage_and_metering(
    site: tuple[str, Seen], watched: Watched, seeded: tuple[datetime, list[Any]], tmp_screens: Path
) -> None:
    base_url, seen = site
    now, records = seeded
    page, token = watched.page, admin_token()
    started = time.monotonic()
    await page.goto(f"{base_url}{PAGE}#access_token={token}")
    await wait_until_loaded(page, "the last 30 days")

    # The token left the address bar for sessionStorage, and went nowhere else.
    assert await page.evaluate("location.hash") == ""
    assert token not in await page.evaluate("location.href")
    assert await page.evaluate("sessionStorage.getItem('liutong.admin.token')") == token
    assert await page.evaluate("localStorage.length") == 0

    days30 = seed.day_window(now, 30)
    plans = seed.bars(records, "plan_id", days30, "day")
    models = seed.bars(records, "model_alias", days30, "day")
    assert await segments(page, "chart-plan") == plans
    assert await legend(page, "chart-plan") == seed.legend(plans) and set(seed.legend(plans)) == set(seed.PLANS)
    assert await segments(page, "chart-model") == models
    assert await legend(page, "chart-model") == seed.legend(models) and set(seed.legend(models)) == set(seed.MODELS)

    expected_teams = seed.top_teams(records, days30)
    assert len({row[3] for row in expected_teams}) == 10, "distinct totals, so the order is unambiguous"
    rows = await page.eval_on_selector_all(
        "#teams tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )
    assert [(name, *map(number, counts)) for name, *counts in rows] == expected_teams
    assert all(row[5] for row in expected_teams), "every top team has BYOK calls: the column is checked, not zeros"
    assert await page.locator("#teams img").count() == 0, "team names are text, never markup"

    refused = await page.eval_on_selector_all(
        "#refused tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )
    assert refused == [[owner or "(unknown key)", key, str(status), code, str(count)]
                       for owner, key, status, code, count in seed.REFUSED]
    assert await page.locator("#refused b").count() == 0, "owners are text, never markup"

    tiles = await page.eval_on_selector_all(
        "#metering-summary .tile", "tiles => tiles.map(t => [t.dataset.status, t.querySelector('dd').textContent])"
    )
    assert {status: int(count) for status, count in tiles} == {s.value: n for s, n in seed.LEDGER.items()}
    errors = await page.eval_on_selector_all(
        "#metering-errors tbody tr", "rows => rows.map(r => r.cells[4].textContent)"
    )
    assert sorted(errors) == sorted(seed.ERROR_TEXTS)
    resources = await page.eval_on_selector_all(
        "#metering-errors tbody tr", "rows => rows.map(r => [r.cells[1].textContent, r.cells[1].title])"
    )
    assert all(title.endswith("/applications/" + name) for name, title in resources), resources
    assert await page.locator("#metering-errors script, #metering-errors b").count() == 0

    screenshot = await page.screenshot(path=str(tmp_screens / "usage-30d.png"))
    width, height, colours = seed.png_summary(screenshot, rows=400)  # the header and both charts
    assert (width, height) == (VIEWPORT["width"], VIEWPORT["height"])
    assert colours >= 50, f"the screenshot looks blank ({colours} colours)"

    # The hour view: the last 48 hours, one bar per hour and plan.
    await page.click("[data-range='48h']")
    await wait_until_loaded(page, "the last 48 hours")
    hours = seed.hour_window(now)
    assert await segments(page, "chart-plan") == seed.bars(records, "plan_id", hours, "hour")
    assert await segments(page, "chart-model") == seed.bars(records, "model_alias", hours, "hour")
    await page.screenshot(path=str(tmp_screens / "usage-48h.png"))

    # Download CSV: fetched with the header, saved from a Blob.
    async with page.expect_download() as download_info:
        await page.click("#csv")
    download = await download_info.value
    assert download.suggested_filename.startswith("liutong-usage-") and download.suggested_filename.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(Path(await download.path()).read_text())))
    assert list(rows[0])[:4] == ["period", "team", "plan_id", "model_alias"]
    assert sum(int(row["total_tokens"]) for row in rows) == sum(seed.bars(records, "plan_id", hours, "hour").values())

    assert watched.console_errors == []
    assert not [url for url in watched.request_urls if token in url]
    assert not [(path, query) for path, query, _ in seen.requests if token in path or token in query]
    api_calls = [(path, authorized) for path, _, authorized in seen.requests if not path.startswith(PAGE)]
    assert api_calls and all(authorized for _, authorized in api_calls)
    assert {path for path, _ in api_calls} == {"/api/admin/usage", "/api/admin/metering/ledger",
                                               "/api/admin/deployments"}
    print(f"browser test: {time.monotonic() - started:.1f}s, screenshots in {tmp_screens}")


async def test_an_operator_suspends_and_resumes_a_customer_from_the_page(
    site: tuple[str, Seen], watched: Watched, seeded: tuple[datetime, list[Any]], admin_service: AdminService
) -> None:
    base_url, _ = site
    page = watched.page
    await page.goto(f"{base_url}{PAGE}#access_token={admin_token()}")
    await wait_until_loaded(page, "the last 30 days")
    row = page.locator(f"#customers tr[data-deployment='{seed.DEPLOYMENT_ID}']")
    await row.wait_for()
    assert await row.locator("td").nth(3).text_content() == "active"
    answers = iter(["unpaid <b>invoice</b>", None])

    async def answer(dialog: Any) -> None:
        reason = next(answers)
        await (dialog.accept(reason) if reason is not None else dialog.dismiss())

    page.on("dialog", answer)
    await row.locator("button").click()
    await page.wait_for_function(
        "id => document.querySelector(`#customers tr[data-deployment='${id}'] button`).textContent === 'Resume'",
        arg=seed.DEPLOYMENT_ID,
    )
    assert (await row.locator("td").nth(3).text_content() or "").endswith(": unpaid <b>invoice</b>")
    assert await page.locator("#customers b").count() == 0, "reasons are text, never markup"
    stored = await admin_service.deployments.get(seed.DEPLOYMENT_ID)  # type: ignore[union-attr]
    assert stored.suspended and stored.suspended_reason == "unpaid <b>invoice</b>"

    await row.locator("button").click()  # the second prompt is dismissed: nothing changes
    await asyncio.sleep(0.3)
    assert (await admin_service.deployments.get(seed.DEPLOYMENT_ID)).suspended  # type: ignore[union-attr]
    assert watched.console_errors == []


async def test_without_a_token_the_page_asks_for_one_and_makes_no_api_call(
    site: tuple[str, Seen], watched: Watched, seeded: tuple[datetime, list[Any]]
) -> None:
    base_url, seen = site
    page = watched.page
    await page.goto(f"{base_url}{PAGE}")
    await page.locator("#sign-in").wait_for(state="visible")
    assert await page.locator("#dashboard").is_hidden()
    assert "python -m admin ui" in (await page.locator("#sign-in").text_content() or "")
    assert not [path for path, _, _ in seen.requests if not path.startswith(PAGE)]

    # Pasting a token signs in.
    await page.fill("#token-input", admin_token())
    await page.click("#sign-in button[type=submit]")
    await wait_until_loaded(page, "the last 30 days")
    assert await page.locator("#sign-in").is_hidden()
    assert await page.locator("#teams tbody tr").count() == 10

    await page.click("#sign-out")
    await page.locator("#sign-in").wait_for(state="visible")
    assert await page.evaluate("sessionStorage.length") == 0
    assert watched.console_errors == []


async def test_a_token_without_the_admin_role_shows_the_api_error_and_the_sign_in_box(
    site: tuple[str, Seen], watched: Watched, tmp_screens: Path
) -> None:
    base_url, _ = site
    page = watched.page
    await page.goto(f"{base_url}{PAGE}#access_token={admin_token(roles=['Somebody.Else'])}")
    await page.locator("#sign-in").wait_for(state="visible")
    assert await page.locator("#error").text_content() == "The admin role is required."
    assert await page.locator("#dashboard").is_hidden()
    assert await page.evaluate("sessionStorage.length") == 0, "a refused token is forgotten"
    assert await page.evaluate("location.hash") == ""
    await page.screenshot(path=str(tmp_screens / "refused.png"))
    # The browser logs the refused fetches (403) as console errors; nothing else may be there.
    assert all("403" in message for message in watched.console_errors), watched.console_errors
