"""The operators' usage page: a static shell and its assets, served without a token.

The shell carries no data; every data call the page makes goes to the admin API with the operator's
bearer token, which the page keeps in sessionStorage (it arrives in the URL fragment, never a query).
"""

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from core.errors import NotFound
from core.http import Handler, endpoint

UI_DIR = Path(__file__).resolve().parent / "ui"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'"
)

# The only files served: a fixed allow-list, never a path taken from the request.
ASSETS: dict[str, str] = {
    "app.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "chart.js": "text/javascript; charset=utf-8",
    "customers.js": "text/javascript; charset=utf-8",
    "models.js": "text/javascript; charset=utf-8",
    "credits.js": "text/javascript; charset=utf-8",
    "tables.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
PAGE = ("index.html", "text/html; charset=utf-8")


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


@functools.cache
def _load(name: str, media_type: str) -> Asset:
    body = (UI_DIR / name).read_bytes()
    return Asset(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


def _headers(asset: Asset) -> dict[str, str]:
    return {
        # No build step, so no content-hashed names: revalidate every time (a 304 is cheap).
        "cache-control": "no-cache",
        "etag": asset.etag,
        "content-security-policy": CONTENT_SECURITY_POLICY,
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
    }


def _serve(req: Request, asset: Asset) -> Response:
    headers = _headers(asset)
    if asset.etag in (tag.strip() for tag in req.headers.get("if-none-match", "").split(",")):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


@endpoint
async def admin_ui_page(req: Request) -> Response:
    return _serve(req, _load(*PAGE))


@endpoint
async def admin_ui_asset(req: Request) -> Response:
    name = req.path_params.get("asset", "")
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFound("No such file.", code="not_found")
    return _serve(req, _load(name, media_type))


UI_ROUTES: tuple[tuple[str, tuple[str, ...], Handler], ...] = (
    ("api/admin/ui", ("GET",), admin_ui_page),
    ("api/admin/ui/{asset}", ("GET",), admin_ui_asset),
)
