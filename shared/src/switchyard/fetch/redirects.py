"""What a request sends, and what a redirect does to it.

Guarantees: a caller cannot set the headers the client must own (``Host``, framing,
``Accept-Encoding``: the body is never compressed, so the size cap counts real bytes);
a redirect to another origin never carries the caller's credentials (``Authorization``,
``Cookie``, ``Proxy-Authorization``) there. Method and body follow what browsers and
``requests`` do: 303 (and 301/302 after a POST) becomes a GET without body, 307 and 308
keep both; HEAD stays HEAD.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from yarl import URL

from switchyard.fetch.errors import RefusedRequest, RefusedUrl

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
RESERVED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "accept-encoding", "te"}
)
CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_BODY_HEADERS = frozenset({"content-type", "content-encoding", "content-language"})


@dataclass(frozen=True)
class Hop:
    """One request of an exchange: the first, or one a redirect leads to."""

    method: str
    url: URL
    headers: dict[str, str]
    body: bytes | None


def outgoing_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The caller's headers; :class:`RefusedRequest` naming one the client must own."""
    reserved = sorted(name for name in headers if name.lower() in RESERVED_HEADERS)
    if reserved:
        raise RefusedRequest(f"header {reserved[0]!r} is set by the client, not the caller")
    return dict(headers)


def redirected(hop: Hop, status: int, location: str) -> Hop:
    """The request a ``status`` redirect to ``location`` asks for (not yet checked)."""
    try:
        target = hop.url.join(URL(location))
    except ValueError:
        raise RefusedUrl(f"bad redirect Location: {location!r}") from None
    method, body, headers = hop.method, hop.body, dict(hop.headers)
    if method != "HEAD" and (status == 303 or (status in (301, 302) and method == "POST")):
        method, body = "GET", None
        headers = {k: v for k, v in headers.items() if k.lower() not in _BODY_HEADERS}
    if _origin(target) != _origin(hop.url):
        headers = {k: v for k, v in headers.items() if k.lower() not in CREDENTIAL_HEADERS}
    return Hop(method, target, headers, body)


def _origin(url: URL) -> tuple[str, str | None, int | None]:
    return url.scheme.lower(), (url.host or "").lower() or None, url.port
