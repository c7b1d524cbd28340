"""Fetcher.request: any method and status, the same guard, redirects, time and size caps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
from aiohttp import web

from switchyard.config import FetchSettings
from switchyard.fetch.errors import (
    FetchTimeout,
    RefusedAddress,
    RefusedRequest,
    TooManyRedirects,
)
from switchyard.fetch.fetcher import Fetcher

LOOPBACK = FetchSettings(
    allow=("127.0.0.0/30",), total_timeout_seconds=5, connect_timeout_seconds=1
)


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    seen = {
        "method": request.method,
        "path": request.path,
        "headers": {k.lower(): v for k, v in request.headers.items()},
        "body": body.decode(),
    }
    return web.json_response(seen, headers={"X-Seen": "yes"})


async def redirect(request: web.Request) -> web.Response:
    status = int(request.match_info["status"])
    return web.Response(status=status, headers={"Location": request.query["to"]})


async def status(request: web.Request) -> web.Response:
    return web.Response(status=int(request.match_info["code"]), text="busy, try later")


async def huge(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    for _ in range(1024):  # 64 MiB, chunked
        await response.write(b"y" * 65536)
    return response


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(30)
    return web.Response(text="late")


@asynccontextmanager
async def serve(host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    app = web.Application()
    app.add_routes(
        [
            web.route("*", "/echo", echo),
            web.route("*", "/redirect/{status}", redirect),
            web.get("/status/{code}", status),
            web.get("/huge", huge),
            web.get("/slow", slow),
        ]
    )
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://{host}:{bound}"
    finally:
        await runner.cleanup()


def seen(content: bytes) -> dict[str, Any]:
    parsed: dict[str, Any] = orjson.loads(content)
    return parsed


def test_post_sends_json_and_returns_status_headers_and_body(run: Any) -> None:
    async def scenario() -> None:
        async with serve() as base, Fetcher(LOOPBACK) as fetcher:
            response = await fetcher.request(
                "post", f"{base}/echo", {"X-Hook": "42"}, {"order": 7, "items": ["a"]}
            )
            assert response.status == 200 and not response.truncated
            assert response.headers["x-seen"] == "yes"
            request = seen(response.content)
            assert request["method"] == "POST"
            assert orjson.loads(request["body"]) == {"order": 7, "items": ["a"]}
            assert request["headers"]["content-type"] == "application/json"
            assert request["headers"]["x-hook"] == "42"
            assert request["headers"]["accept-encoding"] == "identity"

    run(scenario())


def test_non_2xx_is_returned_not_raised(run: Any) -> None:
    async def scenario() -> None:
        async with serve() as base, Fetcher(LOOPBACK) as fetcher:
            for code in (404, 503):
                response = await fetcher.request("GET", f"{base}/status/{code}")
                assert response.status == code
                assert response.content == b"busy, try later"

    run(scenario())


def test_the_body_is_read_up_to_the_cap_only(run: Any) -> None:
    async def scenario() -> None:
        settings = LOOPBACK.model_copy(update={"max_bytes": 1024 * 1024})
        async with serve() as base, Fetcher(settings) as fetcher:
            response = await fetcher.request("GET", f"{base}/huge", max_body_bytes=100)
            assert (response.content, response.truncated) == (b"y" * 100, True)
            response = await fetcher.request("GET", f"{base}/huge")  # max_bytes caps it
            assert len(response.content) == 1024 * 1024 and response.truncated

    run(scenario())


def test_the_guard_refuses_before_connecting(run: Any) -> None:
    async def scenario() -> None:
        async with serve() as base, Fetcher(FetchSettings()) as fetcher:
            with pytest.raises(RefusedAddress):
                await fetcher.request("POST", f"{base}/echo", json_body={})
        async with serve() as base, Fetcher(LOOPBACK) as fetcher:
            target = "http://169.254.169.254/latest/meta-data/"
            with pytest.raises(RefusedAddress) as caught:
                await fetcher.request("POST", f"{base}/redirect/307?to={target}", json_body={})
            assert caught.value.url == target

    run(scenario())


def test_redirects_change_method_and_drop_credentials_across_origins(run: Any) -> None:
    async def scenario() -> None:
        async with (
            serve("127.0.0.1") as base,
            serve("127.0.0.2") as other,
            Fetcher(LOOPBACK) as fetcher,
        ):
            secret = {"Authorization": "Bearer s3cret", "X-Keep": "1"}
            # 307 keeps the method and the body; same origin keeps the credentials.
            response = await fetcher.request(
                "POST", f"{base}/redirect/307?to=/echo", secret, {"n": 1}
            )
            request = seen(response.content)
            assert (request["method"], orjson.loads(request["body"])) == ("POST", {"n": 1})
            assert request["headers"]["authorization"] == "Bearer s3cret"
            # 303 to another origin: a GET without body, and without the credentials.
            response = await fetcher.request(
                "POST", f"{base}/redirect/303?to={other}/echo", secret, {"n": 1}
            )
            request = seen(response.content)
            assert (request["method"], request["body"]) == ("GET", "")
            assert "authorization" not in request["headers"]
            assert "content-type" not in request["headers"]
            assert request["headers"]["x-keep"] == "1"
            # 301 after a PUT keeps the PUT (only a POST becomes a GET).
            response = await fetcher.request("PUT", f"{base}/redirect/301?to=/echo", None, [1])
            assert seen(response.content)["method"] == "PUT"

    run(scenario())


def test_redirect_limit_and_time_cap_hold(run: Any) -> None:
    async def scenario() -> None:
        settings = LOOPBACK.model_copy(update={"max_redirects": 1})
        async with serve() as base, Fetcher(settings) as fetcher:
            loop = f"{base}/redirect/302?to=/redirect/302%3Fto%3D/echo"
            with pytest.raises(TooManyRedirects):
                await fetcher.request("GET", loop)
            with pytest.raises(FetchTimeout):
                await fetcher.request("GET", f"{base}/slow", timeout_seconds=0.3)

    run(scenario())


@pytest.mark.parametrize("name", ["Host", "content-length", "Accept-Encoding"])
def test_headers_the_client_owns_are_refused(run: Any, name: str) -> None:
    async def scenario() -> None:
        async with serve() as base, Fetcher(LOOPBACK) as fetcher:
            with pytest.raises(RefusedRequest) as caught:
                await fetcher.request("GET", f"{base}/echo", {name: "x"})
            assert name in str(caught.value)

    run(scenario())
