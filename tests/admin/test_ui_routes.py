"""The usage page's static files over HTTP (the local host's app, no browser): headers, allow-list, packaging."""

from __future__ import annotations

import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath

import httpx
import pytest

from admin.routes import ADMIN_ROUTES
from admin.ui_handlers import ASSETS, CONTENT_SECURITY_POLICY, UI_DIR, UI_ROUTES
from core.settings import Settings
from localdev.server import build_app
from routes import ROUTES

REPO = Path(__file__).resolve().parents[2]
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'"
)
TYPES = {
    "/api/admin/ui": "text/html; charset=utf-8",
    "/api/admin/ui/app.js": "text/javascript; charset=utf-8",
    "/api/admin/ui/api.js": "text/javascript; charset=utf-8",
    "/api/admin/ui/chart.js": "text/javascript; charset=utf-8",
    "/api/admin/ui/customers.js": "text/javascript; charset=utf-8",
    "/api/admin/ui/models.js": "text/javascript; charset=utf-8",
    "/api/admin/ui/credits.js": "text/javascript; charset=utf-8",
    "/api/admin/ui/tables.js": "text/javascript; charset=utf-8",
    "/api/admin/ui/app.css": "text/css; charset=utf-8",
}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # The local host's own app (its 404/405 mapping included); the lifespan does not run, so no services
    # exist: the page must not need any.
    app = build_app(Settings(_env_file=None))  # type: ignore[call-arg]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ui.test") as http:
        yield http


@pytest.mark.parametrize("path", sorted(TYPES))
async def test_each_file_is_served_without_a_token_with_strict_headers(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == TYPES[path]
    assert response.headers["content-security-policy"] == CSP == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-cache"
    assert response.content and response.headers["etag"]


async def test_an_unchanged_file_revalidates_to_304(client: httpx.AsyncClient) -> None:
    first = await client.get("/api/admin/ui/app.js")
    again = await client.get("/api/admin/ui/app.js", headers={"if-none-match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["content-security-policy"] == CSP
    other = await client.get("/api/admin/ui/app.js", headers={"if-none-match": '"something-else"'})
    assert other.status_code == 200


@pytest.mark.parametrize("name", ["index.html", "missing.js", "app.JS", "ui_handlers.py", "app.js.map", "%2e%2e"])
async def test_a_file_outside_the_allow_list_is_a_json_404(client: httpx.AsyncClient, name: str) -> None:
    response = await client.get(f"/api/admin/ui/{name}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("raw_path", [
    b"/api/admin/ui/../ui_handlers.py",
    b"/api/admin/ui/..%2Fui_handlers.py",
    b"/api/admin/ui/%2e%2e%2f%2e%2e%2fcore%2fsettings.py",
    b"/api/admin/ui/..%5Cui_handlers.py",
    b"/api/admin/ui/ui/../../handlers.py",
    b"/api/admin/ui/app.js%00.py",
    b"/api/admin/ui//etc/passwd",
])
async def test_path_traversal_finds_nothing(client: httpx.AsyncClient, raw_path: bytes) -> None:
    url = httpx.URL("http://ui.test").copy_with(raw_path=raw_path)
    response = await client.get(url)
    assert response.status_code == 404, raw_path
    assert "error" in response.json()
    assert b"import" not in response.content


async def test_other_methods_are_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/admin/ui", content=b"x")
    assert response.status_code == 405


def test_the_ui_routes_are_in_the_one_route_table() -> None:
    assert set(UI_ROUTES) <= set(ADMIN_ROUTES)
    table = {(spec.route, spec.methods, spec.handler) for spec in ROUTES}
    assert set(UI_ROUTES) <= table


def test_every_file_the_page_refers_to_is_allowed_and_nothing_else_is_on_disk() -> None:
    html = (UI_DIR / "index.html").read_text()
    referenced = set(re.findall(r'(?:src|href)="/api/admin/ui/([^"]+)"', html))
    for script in (UI_DIR / name for name in ASSETS if name.endswith(".js")):
        referenced |= set(re.findall(r"from '\./([^']+)'", script.read_text()))
    assert referenced == set(ASSETS)
    assert {path.name for path in UI_DIR.iterdir()} == {*ASSETS, "index.html"}


def test_the_page_keeps_to_its_own_rules() -> None:
    html = (UI_DIR / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline scripts break the CSP"
    assert " style=" not in html and "<style" not in html, "inline styles break the CSP"
    assert "http://" not in html and "https://" not in html, "the page must work offline"
    for name in ASSETS:
        text = (UI_DIR / name).read_text()
        assert len(text.splitlines()) <= 300, name
        code = re.sub(r"^\s*//.*$", "", text, flags=re.MULTILINE)
        for forbidden in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "localStorage", "eval("):
            assert forbidden not in code, f"{name} uses {forbidden}"
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), f"{name} loads from elsewhere"


def test_the_files_ship_in_the_function_app_package() -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    import build_app_package

    rules = build_app_package.parse_funcignore((REPO / ".funcignore").read_text())
    shipped = set(build_app_package.package_files(REPO, rules))
    for name in (*ASSETS, "index.html"):
        assert PurePosixPath("admin/ui", name) in shipped, name
    assert PurePosixPath("admin/ui_handlers.py") in shipped
