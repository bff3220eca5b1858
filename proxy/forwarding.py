"""The upstream hot path: one pooled aiohttp session per worker, failures mapped to OpenAI errors.

What goes upstream is built from scratch (see UpstreamTarget.headers): content-type, accept, Liutong's
own credential for that upstream and its configured OpenAI organization/project. Nothing the caller sent
as a header is forwarded — not its Authorization (the Liutong key), cookies, x-forwarded-*, user agent,
SDK telemetry (x-stainless-*) nor its openai-organization/openai-project, which would select an
account of *Liutong's* upstream subscription.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp

from proxy.upstream_errors import from_status, unreachable

USER_AGENT = "Liutong-Proxy/1"
MAX_ERROR_BODY_BYTES = 64 * 1024
# Above the concurrency one worker is given (Flex allows up to 1,000 HTTP calls per instance): a full pool
# would queue calls inside aiohttp, unseen, while the host believes they are being served.
DEFAULT_MAX_CONNECTIONS = 4096
KEEPALIVE_SECONDS = 30.0
FAILURES = (aiohttp.ClientError, OSError, TimeoutError)
# A pooled connection the upstream closed while idle fails as a disconnect once we write to it (the close
# and our reuse crossed). Such a call is sent once more on a fresh connection; aiohttp itself retries only
# idempotent methods. Connect errors are not retried: nothing was sent, the upstream is just down.
_STALE_CONNECTION = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


class UpstreamClient:
    """Owns the worker's aiohttp session, created lazily in the running loop and closed on shutdown."""

    def __init__(self, *, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, limit_per_host=0, keepalive_timeout=KEEPALIVE_SECONDS,
                ttl_dns_cache=300,
            )
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"user-agent": USER_AGENT}, timeout=aiohttp.ClientTimeout(total=None)
            )
            self._loop = loop
        return self._session

    async def send(
        self, url: str, body: bytes, headers: Mapping[str, str], timeouts: aiohttp.ClientTimeout
    ) -> aiohttp.ClientResponse:
        """The upstream's 2xx response, body unread (the caller releases it); raises LiutongError otherwise."""
        try:
            try:
                response = await self._post(url, body, headers, timeouts)
            except aiohttp.ClientConnectorError:
                raise
            except _STALE_CONNECTION:
                response = await self._post(url, body, headers, timeouts)
        except FAILURES as error:
            raise unreachable(error) from None
        if response.status < 300:
            return response
        try:
            error_body = await read_bounded(response, MAX_ERROR_BODY_BYTES)
        except FAILURES as error:
            raise unreachable(error) from None
        finally:
            response.release()
        raise from_status(response.status, error_body, response.headers)

    async def _post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeouts: aiohttp.ClientTimeout
    ) -> aiohttp.ClientResponse:
        return await self.session().post(url, data=body, headers=headers, timeout=timeouts, allow_redirects=False)

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


async def read_all(response: aiohttp.ClientResponse) -> bytes:
    """A non-streamed body; read failures are the upstream's failures."""
    try:
        return await response.read()
    except FAILURES as error:
        raise unreachable(error) from None
    finally:
        response.release()


async def read_bounded(response: aiohttp.ClientResponse, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(16 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]
