"""What is probed and what a probe found: two frozen records, valid by construction.

A :class:`Target` cannot exist with a URL that is not ``http://``, ``https://`` or
``tcp://host:port``, a timeout longer than its interval (so a target never has two
probes in flight), or thresholds below one; every refusal is a ``ValueError`` naming the
field. A :class:`ProbeResult` is ``up`` exactly when it carries no error, and its
``error.reason`` is one of :data:`REASONS` (stable codes for machines; the message is for
people). The storage and the API build these records; the engine never mutates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

Status = Literal["up", "down"]
Kind = Literal["http", "tcp"]

# Every reason a probe can fail for. "tls" messages start with what was wrong with the
# certificate or handshake (expired, hostname mismatch, self-signed, ...).
REASONS = frozenset(
    {
        "timeout",
        "connection_refused",
        "connection_reset",
        "connection_closed",
        "unreachable",
        "dns",
        "tls",
        "unexpected_status",
        "invalid_response",
        "too_many_redirects",
        "refused_address",
        "connection_failed",
    }
)
MAX_INTERVAL_SECONDS = 86_400.0
MAX_THRESHOLD = 100


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A target URL taken apart: what the probes connect to."""

    kind: Kind
    scheme: str  # http, https or tcp
    host: str  # lower case, without IPv6 brackets
    port: int


def parse_url(url: str) -> Endpoint:
    """The endpoint of a target URL, or ``ValueError("url: ...")``."""
    if len(url) > 2048:
        raise ValueError("url: longer than 2048 characters")
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname
    except ValueError as exc:
        raise ValueError(f"url: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https", "tcp"):
        raise ValueError("url: must start with http://, https:// or tcp://")
    if not host:
        raise ValueError("url: has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("url: credentials in the URL are not allowed")
    if scheme == "tcp":
        if port is None:
            raise ValueError("url: tcp:// needs a port (tcp://host:port)")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("url: tcp:// takes only host:port")
        return Endpoint("tcp", "tcp", host, port)
    if port == 0:
        raise ValueError("url: port 0")
    return Endpoint("http", scheme, host, port or (443 if scheme == "https" else 80))


@dataclass(frozen=True, slots=True)
class Target:
    """One monitored endpoint, as stored. ``version`` changes on every update."""

    id: int
    name: str
    url: str
    interval_seconds: float = 30.0
    timeout_seconds: float = 5.0
    expected_status: int | None = None  # None: any 2xx
    failures_to_down: int = 3
    successes_to_up: int = 1
    version: int = 0
    endpoint: Endpoint = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0.05 <= self.interval_seconds <= MAX_INTERVAL_SECONDS:
            raise ValueError(f"interval_seconds: must be 0.05 to {MAX_INTERVAL_SECONDS:.0f}")
        if not 0 < self.timeout_seconds <= self.interval_seconds:
            raise ValueError("timeout_seconds: must be above 0 and at most interval_seconds")
        if self.expected_status is not None and not 100 <= self.expected_status <= 599:
            raise ValueError("expected_status: must be an HTTP status, 100 to 599")
        for name in ("failures_to_down", "successes_to_up"):
            if not 1 <= getattr(self, name) <= MAX_THRESHOLD:
                raise ValueError(f"{name}: must be 1 to {MAX_THRESHOLD}")
        if not self.name or len(self.name) > 200:
            raise ValueError("name: must be 1 to 200 characters")
        endpoint = parse_url(self.url)
        if endpoint.kind == "tcp" and self.expected_status is not None:
            raise ValueError("expected_status: only for http:// and https:// targets")
        object.__setattr__(self, "endpoint", endpoint)


@dataclass(frozen=True, slots=True)
class ProbeError:
    reason: str  # one of REASONS
    message: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe of one target. ``latency_ms`` is the time to the answer (or to the
    failure); ``status_code`` is set whenever an HTTP response arrived."""

    target_id: int
    checked_at: datetime  # UTC, when the probe started
    latency_ms: float
    status_code: int | None = None
    error: ProbeError | None = None

    def __post_init__(self) -> None:
        if self.checked_at.utcoffset() is None:
            raise ValueError("checked_at: must be timezone-aware (UTC)")
        if self.error is not None and self.error.reason not in REASONS:
            raise ValueError(f"error: unknown reason {self.error.reason!r}")

    @property
    def status(self) -> Status:
        return "up" if self.error is None else "down"
