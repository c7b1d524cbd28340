"""Probes against real servers on loopback: every outcome and its reason."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import trustme

from switchyard.fetch.guard import AddressGuard
from switchyard_health_checker.probes import Prober, ProbeSettings
from switchyard_health_checker.targets import ProbeResult, Target


def target(url: str, **fields: Any) -> Target:
    fields.setdefault("timeout_seconds", 5.0)
    fields.setdefault("interval_seconds", 10.0)
    return Target(id=fields.pop("id", 1), name="t", url=url, **fields)


async def probe(url: str, settings: ProbeSettings | None = None, **fields: Any) -> ProbeResult:
    async with Prober(settings) as prober:
        return await prober.probe(target(url, **fields))


def reason(result: ProbeResult) -> str | None:
    return result.error.reason if result.error else None


def test_http_up(run: Any, serve: Any) -> None:
    async def scenario() -> None:
        async with serve() as server:
            result = await probe(server.url("/ok"))
            assert (result.status, result.status_code, result.error) == ("up", 200, None)
            assert result.target_id == 1
            assert result.latency_ms > 0
            assert result.checked_at.tzinfo is not None
            assert server.hits["/ok"] == 1

    run(scenario())


def test_http_down_by_status_and_expected_status(run: Any, serve: Any) -> None:
    async def scenario() -> None:
        async with serve() as server:
            down = await probe(server.url("/status/503"))
            assert (down.status, down.status_code, reason(down)) == (
                "down",
                503,
                "unexpected_status",
            )
            assert "503" in str(down.error) and "2xx" in str(down.error)
            expected = await probe(server.url("/status/404"), expected_status=404)
            assert (expected.status, expected.status_code) == ("up", 404)
            not_expected = await probe(server.url("/ok"), expected_status=204)
            assert (not_expected.status, not_expected.status_code) == ("down", 200)
            assert reason(not_expected) == "unexpected_status"

    run(scenario())


def test_redirects_followed_unless_a_3xx_is_expected(run: Any, serve: Any) -> None:
    async def scenario() -> None:
        async with serve() as server:
            followed = await probe(server.url("/redirect/2"))
            assert (followed.status, followed.status_code) == ("up", 200)
            assert server.hits["/ok"] == 1
            kept = await probe(server.url("/redirect/2"), expected_status=302)
            assert (kept.status, kept.status_code) == ("up", 302)
            assert server.hits["/redirect/1"] == 1  # not followed the second time
            looping = await probe(server.url("/redirect/9"), ProbeSettings(max_redirects=3))
            assert reason(looping) == "too_many_redirects"

    run(scenario())


def test_timeout(run: Any, serve: Any) -> None:
    async def scenario() -> None:
        async with serve() as server:
            result = await probe(server.url("/slow"), timeout_seconds=0.3)
            assert (result.status, reason(result)) == ("down", "timeout")
            assert result.latency_ms < 5_000

    run(scenario())


def test_endless_body_is_not_read_past_the_cap(run: Any, serve: Any) -> None:
    async def scenario() -> None:
        async with serve() as server:
            result = await probe(server.url("/endless"), ProbeSettings(max_body_bytes=100_000))
            assert (result.status, result.status_code) == ("up", 200)

    run(scenario())


def test_connection_refused_closed_reset_and_dns(
    run: Any, raw_server: Any, refused_port: Any
) -> None:
    async def scenario() -> None:
        refused = await probe(f"http://127.0.0.1:{refused_port()}/")
        assert (refused.status, reason(refused)) == ("down", "connection_refused")
        async with raw_server("close") as port:
            closed = await probe(f"http://127.0.0.1:{port}/")
            assert reason(closed) == "connection_closed"
        async with raw_server("reset") as port:
            reset = await probe(f"http://127.0.0.1:{port}/")
            assert reason(reset) == "connection_reset", reset.error
        unknown = await probe("http://no-such-host.invalid/")  # RFC 6761: never resolves
        assert reason(unknown) == "dns"

    run(scenario())


def test_tcp_up_and_refused(run: Any, raw_server: Any, refused_port: Any) -> None:
    async def scenario() -> None:
        async with raw_server("accept") as port:
            up = await probe(f"tcp://127.0.0.1:{port}")
            assert (up.status, up.status_code, up.error) == ("up", None, None)
        down = await probe(f"tcp://127.0.0.1:{refused_port()}")
        assert (down.status, reason(down)) == ("down", "connection_refused")

    run(scenario())


def test_keep_alive_reuses_one_connection_and_can_be_turned_off(run: Any, serve: Any) -> None:
    async def scenario() -> None:
        for keep_alive, connections in ((True, 1), (False, 3)):
            async with serve() as server, Prober(ProbeSettings(keep_alive=keep_alive)) as prober:
                for _ in range(3):
                    assert (await prober.probe(target(server.url("/ok")))).status == "up"
                assert len(server.peers) == connections, keep_alive

    run(scenario())


def test_each_host_gets_a_new_connection_now_and_then(run: Any, serve: Any) -> None:
    async def scenario() -> None:
        settings = ProbeSettings(fresh_connection_seconds=0.3)
        async with serve() as server, Prober(settings) as prober:
            for _ in range(3):
                await prober.probe(target(server.url("/ok")))
            assert len(server.peers) == 1
            await asyncio.sleep(0.4)
            for _ in range(3):  # the first asks to close; the next two share a new one
                await prober.probe(target(server.url("/ok")))
            assert len(server.peers) == 2

    run(scenario())


def test_the_ssrf_guard_applies_only_when_configured(run: Any, serve: Any, raw_server: Any) -> None:
    async def scenario() -> None:
        guarded = ProbeSettings(guard=AddressGuard())
        allowed = ProbeSettings(guard=AddressGuard([ipaddress.ip_network("127.0.0.1/32")]))
        async with serve() as server, raw_server("accept") as port:
            for url in (
                server.url("/ok"),
                server.url("/ok", "localhost"),
                f"tcp://127.0.0.1:{port}",
            ):
                refused = await probe(url, guarded)
                assert (refused.status, reason(refused)) == ("down", "refused_address"), url
                assert "loopback" in str(refused.error)
                assert (await probe(url, allowed)).status == "up", url
                assert (await probe(url)).status == "up", url
            assert server.hits["/ok"] == 4  # the refused probes never reached it

    run(scenario())


# -- TLS ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_context(cert: Any) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context


def trusting(ca: trustme.CA) -> ProbeSettings:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return ProbeSettings(ssl_context=context)


def test_https_up_with_a_trusted_certificate(run: Any, serve: Any, ca: trustme.CA) -> None:
    async def scenario() -> None:
        async with serve(ssl_context=server_context(ca.issue_cert("127.0.0.1"))) as server:
            result = await probe(server.url("/ok"), trusting(ca))
            assert (result.status, result.status_code) == ("up", 200)

    run(scenario())


@pytest.mark.parametrize(
    ("case", "named"),
    [
        ("expired", "certificate expired"),
        ("not_yet_valid", "certificate not yet valid"),
        ("hostname", "hostname mismatch"),
        ("self_signed", "self-signed certificate"),
        ("untrusted", "untrusted issuer"),
        ("plain_http", "handshake failed"),
    ],
)
def test_tls_errors_are_named(run: Any, serve: Any, ca: trustme.CA, case: str, named: str) -> None:
    now = datetime.now(UTC)
    settings = trusting(ca)
    server_tls: ssl.SSLContext | None
    if case == "expired":
        server_tls = server_context(
            ca.issue_cert(
                "127.0.0.1", not_before=now - timedelta(days=30), not_after=now - timedelta(days=1)
            )
        )
    elif case == "not_yet_valid":
        server_tls = server_context(
            ca.issue_cert(
                "127.0.0.1", not_before=now + timedelta(days=1), not_after=now + timedelta(days=30)
            )
        )
    elif case == "hostname":
        server_tls = server_context(ca.issue_cert("other.test"))
    elif case == "self_signed":
        server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        with ca.cert_pem.tempfile() as cert, ca.private_key_pem.tempfile() as key:
            server_tls.load_cert_chain(cert, key)  # the CA's own certificate, signed by itself
        settings = ProbeSettings()
    elif case == "untrusted":
        server_tls = server_context(ca.issue_cert("127.0.0.1"))
        settings = ProbeSettings()  # the system's trust store does not know this CA
    else:
        server_tls = None

    async def scenario() -> None:
        async with serve(ssl_context=server_tls) as server:
            url = server.url("/ok").replace("http://", "https://")
            result = await probe(url, settings)
            assert (result.status, reason(result)) == ("down", "tls"), result.error
            assert result.error is not None and result.error.message.startswith(named), result.error
            assert server.hits["/ok"] == 0

    run(scenario())


def test_a_probe_never_raises_for_a_failure(run: Any) -> None:
    async def scenario() -> None:
        async with Prober() as prober:
            # An address no route leads to, or a slow blackhole: down either way, never raised.
            results = await asyncio.gather(
                prober.probe(target("tcp://[::1]:1", timeout_seconds=1.0)),
                prober.probe(target("http://127.0.0.1:1/", timeout_seconds=1.0)),
            )
            assert all(r.status == "down" and r.error is not None for r in results)

    run(scenario())
