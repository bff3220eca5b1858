"""The local host's app (localdev.server): the route table's fixed paths go straight to their handlers; every
other request, and every answer Starlette gives itself (404, 405, HEAD), stays as it was."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.http import endpoint
from core.settings import Settings
from localdev.server import LocalApp, build_app
from routes import ROUTES, RouteSpec

MESSAGE = "details the caller must not see"


@endpoint
async def echo(req: Request) -> Response:
    return JSONResponse({"method": req.method, "path": req.url.path, "body": (await req.body()).decode()})


async def unguarded(req: Request) -> Response:  # not wrapped by core.http.endpoint
    raise RuntimeError(MESSAGE)


async def item(req: Request) -> Response:
    return JSONResponse({"id": req.path_params["id"]})


def local_app() -> LocalApp:
    specs = [RouteSpec("v1/echo", ("POST",), echo), RouteSpec("v1/boom", ("POST",), unguarded),
             RouteSpec("v1/items/{id}", ("GET",), item), RouteSpec("v1/read", ("GET",), echo)]
    return LocalApp(fixed=specs, routes=[Route(s.path, s.handler, methods=list(s.methods)) for s in specs])


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=local_app()), base_url="http://local.test") as http:
        yield http


async def test_a_fixed_path_is_answered_by_its_handler(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/echo", content=b'{"a": 1}')
    assert response.status_code == 200
    assert response.json() == {"method": "POST", "path": "/v1/echo", "body": '{"a": 1}'}


async def test_the_direct_way_does_not_go_through_the_router() -> None:
    app = LocalApp(fixed=[RouteSpec("v1/echo", ("POST",), echo)], routes=[])  # Starlette would answer 404
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://local.test") as http:
        assert (await http.post("/v1/echo", content=b"x")).json()["body"] == "x"


async def test_paths_with_parameters_and_head_take_starlettes_way(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/items/42")).json() == {"id": "42"}
    head = await client.head("/v1/read")
    assert head.status_code == 200 and head.content == b""


async def test_an_unexpected_error_is_an_openai_style_500_without_its_message(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="liutong.http"):
        response = await client.post("/v1/boom", content=b"{}")
    assert response.status_code == 500
    assert response.json()["error"]["message"] == "The server had an error processing the request."
    assert MESSAGE not in response.text
    assert "RuntimeError" in caplog.text and "/v1/boom" in caplog.text


@pytest.fixture
async def service_client() -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(Settings(_env_file=None))  # type: ignore[call-arg]  # no lifespan: no services needed here
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://local.test") as http:
        yield http


async def test_the_service_keeps_its_404_and_405_bodies(service_client: httpx.AsyncClient) -> None:
    wrong_method = await service_client.get("/v1/chat/completions")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["message"] == "Method GET is not allowed here."
    missing = await service_client.post("/v1/chat/nothing")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "No route for /v1/chat/nothing."


async def test_every_fixed_route_of_the_table_takes_the_direct_way() -> None:
    app = build_app(Settings(_env_file=None))  # type: ignore[call-arg]
    fixed = [spec for spec in ROUTES if "{" not in spec.route]
    assert fixed and all(app.direct_handler(method, spec.path) is spec.handler for spec in fixed
                         for method in spec.methods)
    assert app.direct_handler("GET", "/metrics") is None  # local only, through Starlette
