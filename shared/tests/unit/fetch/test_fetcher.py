"""The guarded fetcher against real HTTP servers on 127.0.0.x."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from switchyard.config import FetchSettings
from switchyard.fetch.errors import (
    ConnectionFailed,
    DnsFailure,
    FetchError,
    FetchTimeout,
    HttpRefused,
    NotAnImage,
    PermanentFetchError,
    RefusedAddress,
    ServerUnavailable,
    TlsFailure,
    TooLarge,
    TooManyRedirects,
    TransientFetchError,
)
from switchyard.fetch.fetcher import Fetcher

LOOPBACK = FetchSettings(
    allow=("127.0.0.1/32",), total_timeout_seconds=5, connect_timeout_seconds=1
)


def settings(**changes: Any) -> FetchSettings:
    return LOOPBACK.model_copy(update=changes)


async def fetch_error(fetcher: Fetcher, url: str) -> FetchError:
    with pytest.raises(FetchError) as caught:
        await fetcher.fetch_image(url)
    return caught.value


def test_allow_listed_loopback_is_fetched(run: Any, serve: Any) -> None:
    async def scenario() -> None:
        async with serve() as server, Fetcher(LOOPBACK) as fetcher:
            fetched = await fetcher.fetch_image(server.url("/ok.png"))
            assert fetched.kind == "png"  # though the server says text/plain
            assert fetched.content.startswith(b"\x89PNG")
            assert fetched.content_type.startswith("text/plain")

    run(scenario())


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/ok.png",
        "http://0.0.0.0:{port}/ok.png",
        "http://[::1]:{port}/ok.png",
        "http://[::ffff:127.0.0.1]:{port}/ok.png",
        "http://localhost:{port}/ok.png",
        "http://127.1:{port}/ok.png",
        "http://2130706433:{port}/ok.png",
        "http://0x7f000001:{port}/ok.png",
        "http://[::]:{port}/ok.png",
    ],
)
def test_loopback_in_every_form_is_refused_by_default(run: Any, serve: Any, url: str) -> None:
    async def scenario() -> None:
        async with serve() as server, Fetcher(FetchSettings()) as fetcher:
            error = await fetch_error(fetcher, url.format(port=server.port))
            assert isinstance(error, PermanentFetchError), error
            assert error.reason in ("refused_address", "bad_url")
            assert not server.hits

    run(scenario())


def test_hostname_resolving_to_loopback_is_refused(
    run: Any, serve: Any, scripted_resolver: Any
) -> None:
    async def scenario() -> None:
        resolver = scripted_resolver("127.0.0.1")
        async with serve() as server, Fetcher(FetchSettings(), resolver=resolver) as fetcher:
            error = await fetch_error(fetcher, server.url("/ok.png", "images.example.com"))
            assert isinstance(error, RefusedAddress)
            assert error.address == "127.0.0.1"
            assert not server.hits

    run(scenario())


def test_redirect_to_metadata_address_is_refused(run: Any, serve: Any) -> None:
    async def scenario() -> None:
        async with serve() as server, Fetcher(LOOPBACK) as fetcher:
            target = "http://169.254.169.254/latest/meta-data/"
            error = await fetch_error(fetcher, server.url(f"/redirect-to?to={target}"))
            assert isinstance(error, RefusedAddress)
            assert error.url == target
            for to in (
                "http://[::1]/x",
                "http://[::ffff:a9fe:a9fe]/",
                "file:///etc/passwd",
                "//10.0.0.1/x",
                "http://[::1",
            ):
                error = await fetch_error(fetcher, server.url(f"/redirect-to?to={to}"))
                assert isinstance(error, PermanentFetchError), to

    run(scenario())


def test_rebinding_connects_to_the_checked_address(
    run: Any, serve: Any, scripted_resolver: Any
) -> None:
    """First answer 127.0.0.2 (allowed), a second lookup would say 127.0.0.1 (refused):
    the one lookup's checked address is the one connected to."""

    async def scenario() -> None:
        async with serve("127.0.0.2") as allowed, serve("127.0.0.1", allowed.port) as other:
            resolver = scripted_resolver("127.0.0.2", "127.0.0.1")
            async with Fetcher(settings(allow=("127.0.0.2/32",)), resolver=resolver) as fetcher:
                fetched = await fetcher.fetch_image(allowed.url("/ok.png", "cdn.example.com"))
            assert fetched.kind == "png"
            assert resolver.lookups == ["cdn.example.com"]
            assert allowed.hits["/ok.png"] == 1
            assert not other.hits

            resolver = scripted_resolver("127.0.0.1", "127.0.0.2")
            async with Fetcher(settings(allow=("127.0.0.2/32",)), resolver=resolver) as fetcher:
                error = await fetch_error(fetcher, allowed.url("/ok.png", "cdn.example.com"))
            assert isinstance(error, RefusedAddress)
            assert resolver.lookups == ["cdn.example.com"]
            assert allowed.hits["/ok.png"] == 1
            assert not other.hits

    run(scenario())


def test_redirects_are_followed_up_to_the_limit(run: Any, serve: Any) -> None:
    async def scenario() -> None:
        async with serve() as server, Fetcher(LOOPBACK) as fetcher:
            fetched = await fetcher.fetch_image(server.url("/redirect/4"))  # 5 redirects
            assert fetched.url.endswith("/ok.png")
            error = await fetch_error(fetcher, server.url("/redirect/5"))  # 6 redirects
            assert isinstance(error, TooManyRedirects)
            assert error.reason == "too_many_redirects"

    run(scenario())


def test_slow_server_hits_the_time_cap(run: Any, serve: Any) -> None:
    async def scenario() -> None:
        async with serve() as server, Fetcher(settings(total_timeout_seconds=0.5)) as fetcher:
            for path in ("/slow", "/drip"):
                started = time.monotonic()
                error = await fetch_error(fetcher, server.url(path))
                assert isinstance(error, FetchTimeout), error
                assert isinstance(error, TransientFetchError)
                assert time.monotonic() - started < 2

    run(scenario())


def test_huge_body_hits_the_size_cap(run: Any, serve: Any) -> None:
    async def scenario() -> None:
        async with serve() as server, Fetcher(settings(max_bytes=1024 * 1024)) as fetcher:
            for path in ("/huge", "/declared-huge"):
                error = await fetch_error(fetcher, server.url(path))
                assert isinstance(error, TooLarge), error
                assert error.reason == "too_large"

    run(scenario())


def test_not_an_image_with_an_image_content_type(run: Any, serve: Any) -> None:
    async def scenario() -> None:
        async with serve() as server, Fetcher(LOOPBACK) as fetcher:
            error = await fetch_error(fetcher, server.url("/text-as-png"))
            assert isinstance(error, NotAnImage)
            assert (await fetcher.fetch(server.url("/text-as-png"))).content.startswith(b"<")

    run(scenario())


@pytest.mark.parametrize(
    ("code", "kind", "reason"),
    [
        (404, HttpRefused, "http_4xx"),
        (403, HttpRefused, "http_4xx"),
        (429, ServerUnavailable, "http_429"),
        (503, ServerUnavailable, "http_5xx"),
    ],
)
def test_statuses_are_classified(
    run: Any, serve: Any, code: int, kind: type[FetchError], reason: str
) -> None:
    async def scenario() -> None:
        async with serve() as server, Fetcher(LOOPBACK) as fetcher:
            error = await fetch_error(fetcher, server.url(f"/status/{code}"))
            assert type(error) is kind
            assert error.reason == reason

    run(scenario())


def test_connection_refused_and_dns_failure_are_transient(
    run: Any, serve: Any, scripted_resolver: Any
) -> None:
    async def scenario() -> None:
        async with serve() as server:
            port = server.port
        async with Fetcher(LOOPBACK) as fetcher:  # the server is gone: connection refused
            error = await fetch_error(fetcher, f"http://127.0.0.1:{port}/ok.png")
            assert isinstance(error, ConnectionFailed)
        resolver = scripted_resolver(OSError(-2, "Name or service not known"))
        async with Fetcher(LOOPBACK, resolver=resolver) as fetcher:
            error = await fetch_error(fetcher, "http://no-such-host.example/a.png")
            assert isinstance(error, DnsFailure)
            assert isinstance(error, TransientFetchError)

    run(scenario())


def test_one_slow_host_does_not_starve_the_others(run: Any, serve: Any) -> None:
    async def scenario() -> None:
        async with serve("127.0.0.1") as slow, serve("127.0.0.2") as fast:
            limits = settings(allow=("127.0.0.0/30",), max_concurrency=3, max_per_host=2)
            async with Fetcher(limits) as fetcher:
                stuck = [
                    asyncio.create_task(fetcher.fetch_image(slow.url("/held"))) for _ in range(6)
                ]
                await asyncio.sleep(0.3)
                assert slow.max_in_flight == 2
                async with asyncio.timeout(2):
                    fetched = await fetcher.fetch_image(fast.url("/ok.png"))
                assert fetched.kind == "png"
                slow.release.set()
                assert all(r.kind == "png" for r in await asyncio.gather(*stuck))
                assert slow.max_in_flight == 2

    run(scenario())


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls_verifies_the_hostname_on_the_checked_address(
    run: Any, serve: Any, scripted_resolver: Any, tmp_path: Path
) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=images.test",
            "-addext",
            "subjectAltName=DNS:images.test",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    trust = ssl.create_default_context(cafile=str(cert))

    async def scenario() -> None:
        async with serve(ssl_context=server_tls) as server:
            resolver = scripted_resolver("127.0.0.1", "127.0.0.1")
            async with Fetcher(LOOPBACK, resolver=resolver, ssl_context=trust) as fetcher:
                fetched = await fetcher.fetch_image(server.url("/ok.png", "images.test"))
                assert fetched.kind == "png"
                error = await fetch_error(fetcher, server.url("/ok.png", "other.test"))
                assert isinstance(error, TlsFailure), error
                assert isinstance(error, PermanentFetchError)
            assert resolver.lookups == ["images.test", "other.test"]

    run(scenario())
