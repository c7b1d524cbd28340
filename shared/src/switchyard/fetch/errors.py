"""Why a fetch failed: every failure is exactly one of these, with a stable reason code.

Callers decide by class whether to retry, and store ``reason`` (stable, for machines)
and ``str(error)`` (for people)::

    FetchError                    .reason  .url
    ├── TransientFetchError       worth retrying later
    │   ├── FetchTimeout          timeout
    │   ├── DnsFailure            dns_failed
    │   ├── ConnectionFailed      connection_failed (refused, reset, closed early)
    │   └── ServerUnavailable     http_5xx, http_429                       .status
    └── PermanentFetchError       retrying gives the same answer
        ├── RefusedUrl            bad_url, bad_scheme, credentials_in_url
        ├── RefusedRequest        bad_request (a header the client must set itself)
        ├── RefusedAddress        refused_address (SSRF guard)             .address
        ├── HttpRefused           http_4xx, bad_status                      .status
        ├── TlsFailure            tls_failed (certificate or handshake)
        ├── TooManyRedirects      too_many_redirects
        ├── TooLarge              too_large
        └── NotAnImage            not_an_image
"""

from __future__ import annotations


class FetchError(Exception):
    """A fetch failed; ``reason`` is a stable code, the message says what happened."""

    reason: str = "fetch_failed"

    def __init__(self, message: str, *, url: str = "", reason: str | None = None) -> None:
        super().__init__(message)
        self.url = url
        if reason is not None:
            self.reason = reason


class TransientFetchError(FetchError):
    """The same fetch may well succeed later."""


class FetchTimeout(TransientFetchError):
    reason = "timeout"


class DnsFailure(TransientFetchError):
    reason = "dns_failed"


class ConnectionFailed(TransientFetchError):
    reason = "connection_failed"


class ServerUnavailable(TransientFetchError):
    """The server answered 5xx or 429."""

    reason = "http_5xx"

    def __init__(self, status: int, *, url: str = "") -> None:
        super().__init__(
            f"HTTP {status} from {url}", url=url, reason="http_429" if status == 429 else "http_5xx"
        )
        self.status = status


class PermanentFetchError(FetchError):
    """Retrying the same URL gives the same answer."""


class RefusedUrl(PermanentFetchError):
    reason = "bad_url"


class RefusedRequest(PermanentFetchError):
    """The caller asked for something the client will not send (a reserved header)."""

    reason = "bad_request"


class RefusedAddress(PermanentFetchError):
    """The URL's host is, or resolves to, an address the SSRF guard refuses."""

    reason = "refused_address"

    def __init__(self, message: str, *, address: str, url: str = "") -> None:
        super().__init__(message, url=url)
        self.address = address


class HttpRefused(PermanentFetchError):
    """The server answered 4xx (except 429), or a status we cannot use."""

    reason = "http_4xx"

    def __init__(self, status: int, *, url: str = "", reason: str | None = None) -> None:
        super().__init__(f"HTTP {status} from {url}", url=url, reason=reason)
        self.status = status


class TlsFailure(PermanentFetchError):
    reason = "tls_failed"


class TooManyRedirects(PermanentFetchError):
    reason = "too_many_redirects"


class TooLarge(PermanentFetchError):
    reason = "too_large"


class NotAnImage(PermanentFetchError):
    reason = "not_an_image"
