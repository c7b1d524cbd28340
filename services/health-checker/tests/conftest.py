"""Real servers on loopback for the probe and scheduler tests, in the test's own loop;
for the integration tests, an isolated database and topics, the outbox relay, checker
processes, local sites and topic tails (:mod:`.cluster`)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web

from switchyard.config import Settings
from switchyard.db.engine import create_engine
from switchyard_devtools.bench.stack import script, service
from switchyard_devtools.testing.infra import isolated_settings

from .cluster import Checker, Site, Tail


@dataclass
class Server:
    host: str
    port: int = 0
    scheme: str = "http"
    hits: Counter[str] = field(default_factory=Counter)
    peers: set[Any] = field(default_factory=set)  # client (address, port): one per connection
    in_flight: int = 0
    max_in_flight: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str, host: str | None = None) -> str:
        return f"{self.scheme}://{host or self.host}:{self.port}{path}"


def _app(server: Server) -> web.Application:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="status")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(text="late")

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # chunked, no length: only a cap stops a reader
        await response.prepare(request)
        chunk = b"x" * 65536
        while True:
            await response.write(chunk)

    async def redirect(request: web.Request) -> web.Response:
        left = int(request.match_info["n"])
        raise web.HTTPFound(f"/redirect/{left - 1}" if left > 0 else "/ok")

    async def held(request: web.Request) -> web.Response:
        server.in_flight += 1
        server.max_in_flight = max(server.max_in_flight, server.in_flight)
        try:
            await server.release.wait()
        finally:
            server.in_flight -= 1
        return web.Response(text="released")

    @web.middleware
    async def count(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        server.hits[request.path] += 1
        if request.transport is not None:
            server.peers.add(request.transport.get_extra_info("peername"))
        return await handler(request)

    app = web.Application(middlewares=[count])
    app.add_routes(
        [
            web.get("/ok", ok),
            web.get("/t/{id}", ok),
            web.get("/status/{code}", status),
            web.get("/slow", slow),
            web.get("/endless", endless),
            web.get("/redirect/{n}", redirect),
            web.get("/held", held),
            web.get("/held/{id}", held),
        ]
    )
    return app


@asynccontextmanager
async def serve(
    host: str = "127.0.0.1", ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[Server]:
    server = Server(host, scheme="https" if ssl_context else "http")
    # A client hanging up cancels its handler, so tests can see a probe being cancelled.
    runner = web.AppRunner(_app(server), shutdown_timeout=0.1, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, host, 0, ssl_context=ssl_context)
    await site.start()
    listening = site._server
    assert isinstance(listening, asyncio.Server)
    server.port = listening.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        server.release.set()
        await runner.cleanup()


@asynccontextmanager
async def raw_server(behaviour: str, host: str = "127.0.0.1") -> AsyncIterator[int]:
    """A TCP server that ``accept``s (and holds), ``close``s or ``reset``s each connection."""
    held: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if behaviour == "accept":
            held.append(writer)
            return
        await reader.read(1)  # the request has started arriving
        if behaviour == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()

    server = await asyncio.start_server(handle, host, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


def refused_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on (bound, then closed at once)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def run() -> Callable[[Awaitable[Any]], Any]:
    """Run a coroutine to completion, in at most 30 seconds."""

    def runner(coro: Awaitable[Any]) -> Any:
        async def bounded() -> Any:
            async with asyncio.timeout(30):
                return await coro

        return asyncio.run(bounded())

    return runner


@pytest.fixture(name="serve")
def serve_fixture() -> Callable[..., Any]:
    return serve


@pytest.fixture(name="raw_server")
def raw_server_fixture() -> Callable[..., Any]:
    return raw_server


@pytest.fixture(name="refused_port")
def refused_port_fixture() -> Callable[..., int]:
    return refused_port


# -- integration: an isolated database and topics, the relay, checkers, sites, tails ----
@pytest.fixture
def isolated(settings: Settings) -> Settings:
    """A database (targets, shard leases) and topic prefix of this test's own: another
    test's checkers never take this test's shards."""
    return isolated_settings(settings, "checker")


@pytest.fixture
def own_engine(isolated: Settings) -> Iterator[sa.Engine]:
    engine = create_engine(isolated)
    yield engine
    engine.dispose()


@pytest.fixture
def relay(isolated: Settings, tmp_path: Path) -> Iterator[None]:
    """The outbox relay (``switchyard-api relay``): it publishes target.down / target.up."""
    with service([script("switchyard-api"), "relay"], isolated, log=tmp_path / "relay.log"):
        yield


@pytest.fixture
def checkers(isolated: Settings, tmp_path: Path) -> Iterator[Callable[..., Checker]]:
    started: list[Checker] = []

    def make(name: str = "a", **env: str) -> Checker:
        checker = Checker(isolated, tmp_path, name, **env)
        started.append(checker)
        return checker

    yield make
    for checker in started:
        checker.stop_if_running()


@pytest.fixture
def site() -> Iterator[Site]:
    running = Site().start()
    yield running
    running.stop()


@pytest.fixture
def tails(isolated: Settings) -> Iterator[Callable[[str], Tail]]:
    opened: list[Tail] = []

    def make(topic: str) -> Tail:
        tail = Tail(isolated, topic)
        opened.append(tail)
        return tail

    yield make
    for tail in opened:
        tail.close()
