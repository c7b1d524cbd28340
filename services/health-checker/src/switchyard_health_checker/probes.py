"""One probe of one target, as cheaply as asyncio allows; it never raises for a failure.

Guarantees of :meth:`Prober.probe`:

- It returns a :class:`~.targets.ProbeResult` for every outcome; only cancellation
  propagates. A failure carries one stable reason (:data:`~.targets.REASONS`); a TLS
  failure names what was wrong (expired, hostname mismatch, self-signed, untrusted
  issuer, not yet valid, revoked, handshake).
- It takes at most ``target.timeout_seconds``, connect, redirects and body included.
- HTTP(S): one ``GET`` (health endpoints are written for GET; many servers answer HEAD
  with 404/405 or with another code path), redirects followed up to ``max_redirects``
  unless a 3xx is the expected status, and no more than ``max_body_bytes`` of a body
  read: a longer body costs its connection instead of memory. No cookies are kept and
  nothing is decompressed.
- TCP: a connect, timed, then closed at once; nothing is sent.
- One shared session: with ``keep_alive`` an idle connection to the same host and port
  is reused (as browsers and load balancers do; a third less CPU per probe, the figures
  are in the probes bench), so a probe measures the request, not the handshake. A
  reused connection would never see a certificate expire or a name move to another
  address, so each host still gets a new connection (fresh DNS answer, full TLS
  handshake, certificate checked) at least every ``fresh_connection_seconds`` plus one
  interval: the first probe after that asks for ``Connection: close``.
- The SSRF guard is a hook: with ``guard`` set, every address connected to (literal,
  resolved, or reached through a redirect) is checked first and refused with
  ``refused_address``; without it (the normal case: monitored services are internal),
  nothing is checked.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType

import aiohttp
from yarl import URL

from switchyard.fetch.errors import DnsFailure, FetchError
from switchyard.fetch.guard import AddressGuard
from switchyard.fetch.resolver import GuardedResolver
from switchyard_health_checker.targets import ProbeError, ProbeResult, Target

REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_PARSED_URLS = 200_000

# OpenSSL's X509_V_ERR_* codes, named the way an operator says them.
_CERT_ERRORS = {
    9: "certificate not yet valid",
    10: "certificate expired",
    18: "self-signed certificate",
    19: "self-signed certificate in chain",
    20: "untrusted issuer",
    21: "untrusted issuer",
    23: "certificate revoked",
    62: "hostname mismatch",
    64: "hostname mismatch",  # an IP address not in the certificate
}
_RESET = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED})
_UNREACHABLE = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EHOSTDOWN})


@dataclass(frozen=True)
class ProbeSettings:
    keep_alive: bool = True
    keepalive_seconds: float = 30.0  # an idle connection is closed after this
    fresh_connection_seconds: float = 300.0
    max_body_bytes: int = 64 * 1024
    max_redirects: int = 5
    # Connections open at once: a ceiling above the scheduler's concurrency cap.
    max_connections: int = 2_000
    user_agent: str = "switchyard-health-checker"
    ssl_context: ssl.SSLContext | None = None  # None: the system's trust store
    guard: AddressGuard | None = None  # None: no SSRF checks (internal services)
    dns_cache_seconds: int = 10


class Prober:
    """Probes targets over one shared session; ``async with Prober(settings) as p``."""

    def __init__(self, settings: ProbeSettings | None = None) -> None:
        self.settings = settings if settings is not None else ProbeSettings()
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}  # parsed once per target URL, not once per probe
        self._fresh: dict[tuple[str, str, int], float] = {}  # host: last new connection

    async def __aenter__(self) -> Prober:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def probe(self, target: Target) -> ProbeResult:
        checked_at = datetime.now(UTC)
        started = time.perf_counter()
        status_code: int | None = None
        error: ProbeError | None = None
        try:
            async with asyncio.timeout(target.timeout_seconds):
                if target.endpoint.kind == "tcp":
                    await self._tcp(target)
                else:
                    status_code = await self._http(target)
        except TimeoutError:
            error = ProbeError("timeout", f"no answer within {target.timeout_seconds:g}s")
        except _BadStatus as exc:
            status_code, error = exc.status, ProbeError("unexpected_status", str(exc))
        except Exception as exc:  # every other failure is an outcome, not a crash
            error = classify(exc)
        return ProbeResult(
            target.id,
            checked_at,
            round((time.perf_counter() - started) * 1000, 3),
            status_code,
            error,
        )

    async def _http(self, target: Target) -> int:
        expected = target.expected_status
        follow = expected is None or not 300 <= expected < 400
        session = self._open()
        guard = self.settings.guard
        url = self._urls.get(target.url)
        if url is None:
            if len(self._urls) >= _MAX_PARSED_URLS:
                self._urls.clear()
            url = self._urls[target.url] = URL(target.url)
        for _ in range(self.settings.max_redirects + 1):
            if guard is not None:
                guard.check_parts(url.scheme, url.user, url.password, url.host, url=str(url))
            headers = self._close_after(url) if self.settings.keep_alive else None
            async with session.get(url, allow_redirects=False, headers=headers) as response:
                status = response.status
                location = response.headers.get("Location") if follow else None
                await self._drain(response)
                if status in REDIRECTS and location:
                    url = response.url.join(URL(location))
                    continue
            if expected is None and not 200 <= status < 300:
                raise _BadStatus(status, "2xx")
            if expected is not None and status != expected:
                raise _BadStatus(status, str(expected))
            return status
        raise _TooManyRedirects(f"more than {self.settings.max_redirects} redirects")

    def _close_after(self, url: URL) -> dict[str, str] | None:
        """``Connection: close`` when the host is due a new connection, else None."""
        key = (url.scheme, url.host or "", url.port or 0)
        now = time.monotonic()
        last = self._fresh.get(key)
        if last is not None and now - last < self.settings.fresh_connection_seconds:
            return None
        if len(self._fresh) >= _MAX_PARSED_URLS:
            self._fresh.clear()
        self._fresh[key] = now
        # A host seen for the first time gets a new connection anyway.
        return None if last is None else {"Connection": "close"}

    async def _drain(self, response: aiohttp.ClientResponse) -> None:
        # Reading the body to its end is what lets the connection be reused.
        length = response.content_length
        if length is not None and length <= self.settings.max_body_bytes:
            await response.read()
            return
        left = self.settings.max_body_bytes
        while chunk := await response.content.readany():
            left -= len(chunk)
            if left < 0:
                response.close()  # the rest is not worth reading; the connection goes
                return

    async def _tcp(self, target: Target) -> None:
        loop = asyncio.get_running_loop()
        host, port = target.endpoint.host, target.endpoint.port
        if self.settings.guard is not None:
            answers = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            for *_, address in answers:
                self.settings.guard.check_address(str(address[0]), url=target.url)
            host = str(answers[0][4][0])
        transport, _ = await loop.create_connection(asyncio.Protocol, host, port)
        transport.close()

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            s = self.settings
            connector = aiohttp.TCPConnector(
                limit=s.max_connections,
                limit_per_host=0,  # the scheduler's per-host cap applies before this
                force_close=not s.keep_alive,
                keepalive_timeout=s.keepalive_seconds if s.keep_alive else None,
                ssl=s.ssl_context if s.ssl_context is not None else True,
                resolver=GuardedResolver(s.guard) if s.guard is not None else None,
                ttl_dns_cache=s.dns_cache_seconds,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),  # the probe's own timeout rules
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                trust_env=False,
                headers={"User-Agent": s.user_agent, "Accept-Encoding": "identity"},
            )
        return self._session


class _BadStatus(Exception):
    def __init__(self, status: int, expected: str) -> None:
        super().__init__(f"HTTP {status}, expected {expected}")
        self.status = status


class _TooManyRedirects(Exception):
    pass


def classify(exc: BaseException) -> ProbeError:
    """The stable reason (and a message) for an exception raised while probing."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, _TooManyRedirects):
        return ProbeError("too_many_redirects", message)
    if isinstance(exc, DnsFailure | aiohttp.ClientConnectorDNSError | socket.gaierror):
        return ProbeError("dns", message)
    if isinstance(exc, FetchError):  # the guard refused the URL or an address
        return ProbeError("refused_address", message)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return _tls(exc.certificate_error)
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        inner = exc.os_error if isinstance(exc, aiohttp.ClientConnectorError) else exc
        return _tls(inner)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _os_error(exc.os_error, message)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return ProbeError("connection_closed", "the server closed the connection before answering")
    if isinstance(
        exc, aiohttp.ClientResponseError | aiohttp.ClientPayloadError | aiohttp.InvalidURL
    ):
        return ProbeError("invalid_response", message)
    if isinstance(exc, ValueError):  # e.g. a Location header that is not a URL
        return ProbeError("invalid_response", message)
    if isinstance(exc, OSError):
        return _os_error(exc, message)
    return ProbeError("connection_failed", f"{type(exc).__name__}: {message}")


def _os_error(exc: OSError, message: str) -> ProbeError:
    # By errno: aiohttp re-raises socket errors as its own OSError subclasses.
    if isinstance(exc, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED:
        return ProbeError("connection_refused", message)
    if isinstance(exc, ConnectionResetError | BrokenPipeError) or exc.errno in _RESET:
        return ProbeError("connection_reset", message)
    if exc.errno in _UNREACHABLE:
        return ProbeError("unreachable", message)
    return ProbeError("connection_failed", message)


def _tls(exc: BaseException) -> ProbeError:
    if isinstance(exc, ssl.SSLCertVerificationError):
        name = _CERT_ERRORS.get(exc.verify_code, "certificate not trusted")
        return ProbeError("tls", f"{name} ({exc.verify_message})")
    detail = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
    return ProbeError("tls", f"handshake failed ({detail})")
