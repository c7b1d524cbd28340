"""Fetch a URL given by a user without letting it reach anything it should not.

Guarantees of :class:`Fetcher`:

- Only addresses :class:`~switchyard.fetch.guard.AddressGuard` accepts are connected to:
  a literal host is checked before the request, a name is resolved once and connected to
  the very addresses that were checked (:mod:`switchyard.fetch.resolver`). No proxy from
  the environment is used.
- Redirects are followed by hand, at most ``max_redirects``, each target re-checked
  (:mod:`switchyard.fetch.redirects` says what a redirect does to the method, the body
  and the credentials).
- The whole exchange (redirects and body) takes at most ``total_timeout_seconds`` (or
  the ``timeout_seconds`` of :meth:`Fetcher.request`), counted from when it gets its
  concurrency slots; no body is held beyond ``max_bytes`` while it streams
  (:mod:`switchyard.fetch.body`; compression is not asked for nor undone).
- :meth:`Fetcher.fetch_image` accepts only bytes that start like an image, whatever the
  ``Content-Type`` says (:mod:`switchyard.fetch.sniff`).
- At most ``max_concurrency`` exchanges in flight, ``max_per_host`` per host
  (:mod:`switchyard.fetch.limits`).
- Every failure is one :class:`~switchyard.fetch.errors.FetchError`: transient (retry)
  or permanent, with a stable ``reason`` (the tree is drawn in :mod:`~.errors`).
  :meth:`~Fetcher.fetch` and :meth:`~Fetcher.fetch_image` also fail on a non-2xx answer;
  :meth:`~Fetcher.request` returns whatever status the server answered.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver
from yarl import URL

from switchyard.config import FetchSettings
from switchyard.fetch.body import read_capped, read_truncated
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
from switchyard.fetch.redirects import REDIRECT_STATUSES, Hop, outgoing_headers, redirected
from switchyard.fetch.resolver import GuardedResolver
from switchyard.fetch.sniff import SNIFF_BYTES, image_kind

T = TypeVar("T")
Reader = Callable[[aiohttp.ClientResponse, URL], Awaitable[T]]


@dataclass(frozen=True)
class Fetched:
    url: str  # after redirects
    status: int
    content: bytes
    content_type: str
    kind: str | None = None  # what the bytes are, for fetch_image: "jpeg", "png", ...


@dataclass(frozen=True)
class Response:
    """What :meth:`Fetcher.request` got: any status, the body read up to a cap."""

    url: str  # after redirects
    status: int
    headers: Mapping[str, str]  # the first value of each name, names lower-case
    content: bytes
    truncated: bool  # the body went on past what was read


class Fetcher:
    """A guarded HTTP client; use as ``async with Fetcher(settings) as fetcher``."""

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
        return await self._get(url, image=False)

    async def fetch_image(self, url: str) -> Fetched:
        """GET ``url`` and refuse (:class:`NotAnImage`) what does not start like an image."""
        return await self._get(url, image=True)

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        *,
        timeout_seconds: float | None = None,
        max_body_bytes: int | None = None,
    ) -> Response:
        """``method`` ``url`` with ``json_body`` (sent as JSON unless None): the final
        response, whatever its status; its body is read up to ``max_body_bytes`` (at most
        ``max_bytes``) and the rest left unread. A :class:`FetchError` if there is none."""
        cap = self.settings.max_bytes
        if max_body_bytes is not None:
            cap = min(cap, max_body_bytes)
        outgoing = outgoing_headers(headers or {})  # RefusedRequest for a reserved header
        body = None
        if json_body is not None:
            body = orjson.dumps(json_body)
            outgoing.setdefault("Content-Type", "application/json")
        outgoing.setdefault("Accept", "*/*")

        async def read(resp: aiohttp.ClientResponse, final: URL) -> Response:
            content, truncated = await read_truncated(resp, max_bytes=cap)
            first = {k.lower(): v for k, v in reversed(list(resp.headers.items()))}
            return Response(str(final), resp.status, first, content, truncated)

        hop = Hop(method.upper(), self._checked(url), outgoing, body)
        timeout = timeout_seconds or self.settings.total_timeout_seconds
        return await self._exchange(hop, read, timeout, strict=False)

    async def _get(self, url: str, *, image: bool) -> Fetched:
        async def read(resp: aiohttp.ClientResponse, final: URL) -> Fetched:
            if resp.status == 429 or resp.status >= 500:
                raise ServerUnavailable(resp.status, url=str(final))
            if not 200 <= resp.status < 300:
                reason = "http_4xx" if 400 <= resp.status < 500 else "bad_status"
                raise HttpRefused(resp.status, url=str(final), reason=reason)
            content = await read_capped(resp, max_bytes=self.settings.max_bytes, image=image)
            kind = image_kind(content[:SNIFF_BYTES]) if image else None
            content_type = resp.headers.get("Content-Type", "")
            return Fetched(str(final), resp.status, content, content_type, kind)

        headers = {"Accept": "image/*" if image else "*/*"}
        hop = Hop("GET", self._checked(url), headers, None)
        return await self._exchange(hop, read, self.settings.total_timeout_seconds, strict=True)

    def _checked(self, url: str | URL) -> URL:
        """``url`` parsed by the client's own parser, and checked by the guard."""
        try:
            parsed = url if isinstance(url, URL) else URL(url)
            parts = (parsed.scheme, parsed.user, parsed.password, parsed.host)
        except (ValueError, TypeError) as exc:
            raise RefusedUrl(f"not a valid URL: {exc}", url=str(url)) from None
        self.guard.check_parts(*parts, url=str(url))
        return parsed

    async def _exchange(self, hop: Hop, read: Reader[T], timeout: float, *, strict: bool) -> T:
        """``hop`` and its redirects, all within ``timeout``; ``read`` takes the answer.
        ``strict``: a redirect without a Location is an error, not the answer."""
        deadline: float | None = None
        for _ in range(self.settings.max_redirects + 1):
            async with self._limits.slot(hop.url.host or ""):
                if deadline is None:
                    deadline = asyncio.get_running_loop().time() + timeout
                try:
                    async with asyncio.timeout_at(deadline):
                        outcome = await self._hop(hop, read, strict)
                except TimeoutError:
                    raise FetchTimeout(
                        f"no complete answer within {timeout}s", url=str(hop.url)
                    ) from None
                except FetchError as exc:
                    exc.url = str(hop.url)
                    raise
            if not isinstance(outcome, Hop):
                return outcome
            hop = replace(outcome, url=self._checked(outcome.url))
        raise TooManyRedirects(
            f"more than {self.settings.max_redirects} redirects", url=str(hop.url)
        )

    async def _hop(self, hop: Hop, read: Reader[T], strict: bool) -> T | Hop:
        """One request: what ``read`` makes of the answer, or the redirect to follow."""
        headers = {**hop.headers, "Accept-Encoding": "identity"}
        session = self._open()
        try:
            async with session.request(
                hop.method, hop.url, headers=headers, data=hop.body, allow_redirects=False
            ) as resp:
                if resp.status in REDIRECT_STATUSES:
                    location = resp.headers.get("Location")
                    if location:
                        return redirected(hop, resp.status, location)
                    if strict:
                        raise HttpRefused(resp.status, url=str(hop.url), reason="bad_status")
                return await read(resp, hop.url)
        except FetchError:
            raise
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise _classified(exc, hop.url) from exc

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
