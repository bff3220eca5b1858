"""UpstreamClient against a raw TCP upstream: a pooled connection the upstream dropped is sent again once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from core.errors import UpstreamUnavailable
from proxy.forwarding import UpstreamClient, read_all

OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
TIMEOUTS = aiohttp.ClientTimeout(total=5)


@dataclass
class RawUpstream:
    """Answers each request on a connection with `answer(n)` (n counts requests over all connections);
    None closes the connection without answering, as an upstream closing an idle connection does."""

    answer: Callable[[int], bytes | None]
    requests: int = 0
    connections: int = 0
    bodies: list[bytes] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                lines = head.lower().split(b"\r\n")
                length = next(int(line.split(b":", 1)[1]) for line in lines if line.startswith(b"content-length"))
                self.bodies.append(await reader.readexactly(length))
                self.requests += 1
                reply = self.answer(self.requests)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


Start = Callable[[RawUpstream], Awaitable[str]]


@pytest.fixture
async def start_upstream() -> AsyncIterator[Start]:
    servers: list[asyncio.Server] = []

    async def start(upstream: RawUpstream) -> str:
        server = await asyncio.start_server(upstream.serve, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1/chat/completions"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def call(client: UpstreamClient, url: str, body: bytes) -> bytes:
    return await read_all(await client.send(url, body, {"content-type": "application/json"}, TIMEOUTS))


async def test_a_pooled_connection_dropped_by_the_upstream_is_sent_again_on_a_new_one(start_upstream: Start) -> None:
    upstream = RawUpstream(answer=lambda n: None if n == 2 else OK)
    url = await start_upstream(upstream)
    client = UpstreamClient()
    try:
        assert await call(client, url, b'{"n":1}') == b"{}"
        assert await call(client, url, b'{"n":2}') == b"{}"  # first try met the dropped connection
    finally:
        await client.close()
    assert upstream.bodies == [b'{"n":1}', b'{"n":2}', b'{"n":2}'] and upstream.connections == 2


async def test_an_upstream_that_drops_every_call_is_a_502_after_one_retry(start_upstream: Start) -> None:
    upstream = RawUpstream(answer=lambda n: None)
    url = await start_upstream(upstream)
    client = UpstreamClient()
    try:
        with pytest.raises(UpstreamUnavailable) as raised:
            await call(client, url, b"{}")
    finally:
        await client.close()
    assert raised.value.status_code == 502 and raised.value.code == "bad_gateway"
    assert upstream.requests == 2


class CountingClient(UpstreamClient):
    posts = 0

    async def _post(self, *args: Any, **kwargs: Any) -> aiohttp.ClientResponse:
        self.posts += 1
        return await super()._post(*args, **kwargs)


async def test_a_refused_connection_is_not_retried(start_upstream: Start) -> None:
    url = await start_upstream(RawUpstream(answer=lambda n: OK))
    port = url.split(":")[2].split("/")[0]
    client = CountingClient()
    try:
        with pytest.raises(UpstreamUnavailable):
            await call(client, url.replace(port, "1"), b"{}")  # nothing listens on port 1
    finally:
        await client.close()
    assert client.posts == 1
