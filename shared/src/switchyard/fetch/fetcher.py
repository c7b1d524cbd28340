"""Fetch a URL given by a user without letting it reach anything it should not.

Guarantees of :class:`Fetcher`:

- Only addresses :class:`~switchyard.fetch.guard.AddressGuard` accepts are connected to:
  a literal host is checked before the request, a name is resolved once and connected to
  the very addresses that were checked (:mod:`switchyard.fetch.resolver`). No proxy from
  the environment is used.
- Redirects are followed by hand, at most ``max_redirects``, each target re-checked.
- The whole fetch (redirects and body) takes at most ``total_timeout_seconds``, counted
  from when it gets its concurrency slots; a body over ``max_bytes`` is cut off while it
  streams (:mod:`switchyard.fetch.body`; compression is not asked for nor undone).
- :meth:`Fetcher.fetch_image` accepts only bytes that start like an image, whatever the
  ``Content-Type`` says (:mod:`switchyard.fetch.sniff`).
- At most ``max_concurrency`` fetches in flight, ``max_per_host`` per host
  (:mod:`switchyard.fetch.limits`).
- Every failure is one :class:`~switchyard.fetch.errors.FetchError`: transient (retry)
  or permanent, with a stable ``reason`` (the tree is drawn in :mod:`~.errors`).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from types import TracebackType

import aiohttp
from aiohttp.abc import AbstractResolver
from yarl import URL

from switchyard.config import FetchSettings
from switchyard.fetch.body import read_capped
from switchyard.fetch.errors import (
    ConnectionFailed,
    DnsFailure,
    FetchError,
    FetchTimeout,
    HttpRefused,
    RefusedUrl,
    ServerUnavailable,
    TlsFailure,
    TooManyRedirects,
)
from switchyard.fetch.guard import AddressGuard
from switchyard.fetch.limits import ConcurrencyLimits
from switchyard.fetch.resolver import GuardedResolver
from switchyard.fetch.sniff import SNIFF_BYTES, image_kind

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class Fetched:
    url: str  # after redirects
    status: int
    content: bytes
    content_type: str
    kind: str | None = None  # what the bytes are, for fetch_image: "jpeg", "png", ...


class Fetcher:
    """A guarded HTTP GET client; use as ``async with Fetcher(settings) as fetcher``."""

    def __init__(
        self,
        settings: FetchSettings | None = None,
        *,
        resolver: AbstractResolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """``resolver`` answers DNS (the system's by default), ``ssl_context`` says which
        certificates to trust (the system's by default); hostnames are always verified."""
        self.settings = settings if settings is not None else FetchSettings()
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self.guard = AddressGuard(self.settings.allow)
        self._inner_resolver = resolver
        self._limits = ConcurrencyLimits(self.settings.max_concurrency, self.settings.max_per_host)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Fetcher:
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

    async def fetch(self, url: str) -> Fetched:
        """GET ``url``: its final 2xx response, or a :class:`FetchError`."""
        return await self._fetch(url, image=False)

    async def fetch_image(self, url: str) -> Fetched:
        """GET ``url`` and refuse (:class:`NotAnImage`) what does not start like an image."""
        return await self._fetch(url, image=True)

    def _checked(self, url: str | URL) -> URL:
        """``url`` parsed by the client's own parser, and checked by the guard."""
        try:
            parsed = url if isinstance(url, URL) else URL(url)
            parts = (parsed.scheme, parsed.user, parsed.password, parsed.host)
        except (ValueError, TypeError) as exc:
            raise RefusedUrl(f"not a valid URL: {exc}", url=str(url)) from None
        self.guard.check_parts(*parts, url=str(url))
        return parsed

    async def _fetch(self, url: str, *, image: bool) -> Fetched:
        current = self._checked(url)
        deadline: float | None = None
        for _ in range(self.settings.max_redirects + 1):
            async with self._limits.slot(current.host or ""):
                if deadline is None:
                    deadline = asyncio.get_running_loop().time() + (
                        self.settings.total_timeout_seconds
                    )
                try:
                    async with asyncio.timeout_at(deadline):
                        outcome = await self._hop(current, image=image)
                except TimeoutError:
                    raise FetchTimeout(
                        f"no complete answer within {self.settings.total_timeout_seconds}s",
                        url=str(current),
                    ) from None
                except FetchError as exc:
                    exc.url = str(current)
                    raise
            if isinstance(outcome, Fetched):
                return outcome
            current = self._checked(outcome)
        raise TooManyRedirects(f"more than {self.settings.max_redirects} redirects", url=url)

    async def _hop(self, url: URL, *, image: bool) -> Fetched | URL:
        """One request: the response, or where it redirects to."""
        headers = {"Accept-Encoding": "identity", "Accept": "image/*" if image else "*/*"}
        try:
            async with self._open().get(url, headers=headers, allow_redirects=False) as resp:
                if resp.status in REDIRECT_STATUSES:
                    location = resp.headers.get("Location")
                    if not location:
                        raise HttpRefused(resp.status, url=str(url), reason="bad_status")
                    try:
                        return url.join(URL(location))
                    except ValueError:
                        raise RefusedUrl(f"bad redirect Location: {location!r}") from None
                if resp.status == 429 or resp.status >= 500:
                    raise ServerUnavailable(resp.status, url=str(url))
                if not 200 <= resp.status < 300:
                    raise HttpRefused(
                        resp.status,
                        url=str(url),
                        reason=("http_4xx" if 400 <= resp.status < 500 else "bad_status"),
                    )
                content = await read_capped(resp, max_bytes=self.settings.max_bytes, image=image)
                return Fetched(
                    str(url),
                    resp.status,
                    content,
                    resp.headers.get("Content-Type", ""),
                    image_kind(content[:SNIFF_BYTES]) if image else None,
                )
        except FetchError:
            raise
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise _classified(exc, url) from exc

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(self.guard, self._inner_resolver),
                use_dns_cache=False,
                ssl=self._ssl,
                limit=self.settings.max_concurrency,
                limit_per_host=self.settings.max_per_host,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=self.settings.connect_timeout_seconds
                ),
                auto_decompress=False,
                trust_env=False,
            )
        return self._session


def _classified(exc: BaseException, url: URL) -> FetchError:
    """The :class:`FetchError` for an exception of the HTTP client."""
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, TimeoutError):  # connecting; the total cap cancels instead
        return FetchTimeout(message)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return DnsFailure(f"cannot resolve {url.host}: {exc}")
    if isinstance(exc, aiohttp.ClientSSLError):
        return TlsFailure(message)
    if isinstance(exc, aiohttp.InvalidURL):
        return RefusedUrl(message)
    return ConnectionFailed(message)
