"""A real HTTP server on 127.0.0.x for the fetcher tests, in the test's own event loop."""

from __future__ import annotations

import asyncio
import io
import socket
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult


def png_bytes() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(out, "PNG")
    return out.getvalue()


PNG = png_bytes()


@dataclass
class Server:
    host: str
    port: int
    hits: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)
    scheme: str = "http"

    def url(self, path: str, host: str | None = None) -> str:
        return f"{self.scheme}://{host or self.host}:{self.port}{path}"


def _app(server: Server) -> web.Application:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="text/plain")

    async def text_as_png(request: web.Request) -> web.Response:
        return web.Response(body=b"<html>not an image</html>", content_type="image/png")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(body=PNG)

    async def drip(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(PNG[:16])
        for _ in range(300):
            await response.write(b"x")
            await asyncio.sleep(0.1)
        return response

    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # chunked: no Content-Length to trust
        await response.prepare(request)
        await response.write(PNG[:16])
        chunk = b"\0" * 65536
        for _ in range(1024):  # 64 MiB, far more than the cap
            await response.write(chunk)
        return response

    async def declared_huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(10**9)})
        await response.prepare(request)
        await response.write(PNG)
        return response

    async def redirect(request: web.Request) -> web.Response:
        left = int(request.match_info["n"])
        raise web.HTTPFound(f"/redirect/{left - 1}" if left > 0 else "/ok.png")

    async def redirect_to(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": request.query["to"]})

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="no")

    async def held(request: web.Request) -> web.Response:
        server.in_flight += 1
        server.max_in_flight = max(server.max_in_flight, server.in_flight)
        try:
            await server.release.wait()
        finally:
            server.in_flight -= 1
        return web.Response(body=PNG)

    @web.middleware
    async def count(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        server.hits[request.path] += 1
        return await handler(request)

    app = web.Application(middlewares=[count])
    app.add_routes(
        [
            web.get("/ok.png", ok),
            web.get("/text-as-png", text_as_png),
            web.get("/slow", slow),
            web.get("/drip", drip),
            web.get("/huge", huge),
            web.get("/declared-huge", declared_huge),
            web.get("/redirect/{n}", redirect),
            web.get("/redirect-to", redirect_to),
            web.get("/status/{code}", status),
            web.get("/held", held),
        ]
    )
    return app


@asynccontextmanager
async def serve(
    host: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[Server]:
    server = Server(host, port, scheme="https" if ssl_context else "http")
    runner = web.AppRunner(_app(server), shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    sockets = site._server.sockets  # type: ignore[union-attr]
    server.port = sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        server.release.set()
        await runner.cleanup()


class ScriptedResolver(AbstractResolver):
    """Answers each lookup with the next address of ``answers``; records every lookup."""

    def __init__(self, *answers: str | OSError) -> None:
        self.answers = list(answers)
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        answer = self.answers.pop(0)
        if isinstance(answer, OSError):
            raise answer
        return [
            {
                "hostname": host,
                "host": answer,
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
        ]

    async def close(self) -> None:
        pass


@pytest.fixture
def run() -> Callable[[Awaitable[Any]], Any]:
    """Run a coroutine to completion, in at most 20 seconds."""

    def runner(coro: Awaitable[Any]) -> Any:
        async def bounded() -> Any:
            async with asyncio.timeout(20):
                return await coro

        return asyncio.run(bounded())

    return runner


@pytest.fixture(name="serve")
def serve_fixture() -> Callable[..., Any]:
    return serve


@pytest.fixture(name="scripted_resolver")
def scripted_resolver_fixture() -> type[ScriptedResolver]:
    return ScriptedResolver
