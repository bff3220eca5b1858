"""The admin API over httpx: bearer token, OpenAI-style errors, continuation-token pages, CSV downloads."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from admin.cli.errors import ApiError, Unavailable

TIMEOUT_SECONDS = 60.0
MAX_PAGES = 10_000
T = TypeVar("T")


@dataclass
class Page:
    items: list[dict[str, Any]]
    next_token: str | None


def segment(value: str) -> str:
    """One path segment, whatever it holds."""
    return quote(value, safe="")


def _error_of(response: httpx.Response) -> ApiError:
    message, code = f"HTTP {response.status_code}", None
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        message, code = str(error["message"]), error.get("code")
    elif response.text:
        message = f"HTTP {response.status_code}: {response.text[:200]}"
    return ApiError(response.status_code, message, code if isinstance(code, str) else None)


def _clean(params: Mapping[str, Any] | None) -> dict[str, str]:
    return {name: str(value) for name, value in (params or {}).items() if value not in (None, "")}


class AdminApi:
    """`token` gives the bearer token; `renew` drops it and gives a new one, once, when the API refuses it as
    stale (ApiError.stale_token)."""

    def __init__(
        self,
        base_url: str,
        token: Callable[[], str],
        *,
        renew: Callable[[], str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._base_url = base_url
        self._token = token
        self._renew = renew
        self._renewed = False
        self._bearer: str | None = None
        self._client = httpx.Client(
            base_url=base_url, timeout=TIMEOUT_SECONDS, transport=transport, headers={"user-agent": "liutong-admin"}
        )

    def close(self) -> None:
        self._client.close()

    def _headers(self) -> dict[str, str]:
        if self._bearer is None:
            self._bearer = self._token()
        return {"authorization": f"Bearer {self._bearer}"}

    def _unreachable(self, error: httpx.TransportError) -> Unavailable:
        return Unavailable(f"Cannot reach the admin API at {self._base_url}: {type(error).__name__}")

    def _renewing(self, attempt: Callable[[], T]) -> T:
        # Sending again is safe: the API authenticates before it acts, so a refused request changed nothing.
        try:
            return attempt()
        except ApiError as error:
            if self._renew is None or self._renewed or not error.stale_token:
                raise
            self._renewed = True
            self._bearer = self._renew()
        return attempt()

    def call(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None
    ) -> dict[str, Any]:
        return self._renewing(lambda: self._call_once(method, path, params, body))

    def _call_once(self, method: str, path: str, params: Mapping[str, Any] | None, body: Any) -> dict[str, Any]:
        headers = self._headers()
        try:
            response = self._client.request(method, path, params=_clean(params), json=body, headers=headers)
        except httpx.TransportError as error:
            raise self._unreachable(error) from None
        if response.status_code >= 400:
            raise _error_of(response)
        result = response.json()
        return result if isinstance(result, dict) else {"data": result}

    def page(self, path: str, params: Mapping[str, Any]) -> Page:
        body = self.call("GET", path, params=params)
        items = body.get("data") or []
        token = body.get("continuation_token") if body.get("has_more") else None
        return Page(items=list(items), next_token=token)

    def pages(self, path: str, params: Mapping[str, Any], *, every: bool) -> Iterator[Page]:
        """The first page, or with `every` each page until `has_more` is false."""
        current = dict(params)
        for _ in range(MAX_PAGES):
            page = self.page(path, current)
            yield page
            if not every or page.next_token is None:
                return
            current["continuation_token"] = page.next_token

    def download(
        self, path: str, params: Mapping[str, Any], destination: Path, progress: Callable[[int, int | None], None]
    ) -> int:
        """Streams the answer into `destination` (replaced only when complete); returns its size in bytes."""
        return self._renewing(lambda: self._download_once(path, params, destination, progress))

    def _download_once(
        self, path: str, params: Mapping[str, Any], destination: Path, progress: Callable[[int, int | None], None]
    ) -> int:
        headers = self._headers()
        partial = destination.with_name(destination.name + ".part")
        written = 0
        try:
            with self._client.stream("GET", path, params=_clean(params), headers=headers) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error_of(response)
                total = int(response.headers["content-length"]) if "content-length" in response.headers else None
                with partial.open("wb") as handle:
                    for chunk in response.iter_bytes():
                        handle.write(chunk)
                        written += len(chunk)
                        progress(written, total)
            partial.replace(destination)
        except httpx.TransportError as error:
            raise self._unreachable(error) from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
        return written
