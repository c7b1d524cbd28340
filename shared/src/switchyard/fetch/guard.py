"""The SSRF guard: a fetch only reaches public addresses, or ones the operator allowed.

Refused unless allow-listed (``FETCH__ALLOW``): unspecified (``0.0.0.0``, ``::``),
private, loopback, link-local, unique-local (fc00::/7), carrier-grade NAT, multicast,
reserved, documentation and benchmark ranges, anything else not globally routable, and
the same addresses hidden inside IPv6 (IPv4-mapped, IPv4-compatible, 6to4, NAT64,
Teredo). Cloud-metadata addresses are refused even inside an allowed network; only
allowing the address itself lets them through. URLs must be http or https, with a host
and without credentials. Callers check the URL with :meth:`AddressGuard.check_url` and
every address they are about to connect to with :meth:`AddressGuard.check_address`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from switchyard.fetch.errors import RefusedAddress, RefusedUrl

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

CLOUD_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, ...
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.123",  # AWS time sync
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
        "fd00:ec2::254",  # AWS over IPv6
    )
)

_REFUSED: tuple[tuple[IpNetwork, str], ...] = tuple(
    (ipaddress.ip_network(net), name)
    for net, name in (
        ("0.0.0.0/8", "unspecified"),
        ("::/128", "unspecified"),
        ("127.0.0.0/8", "loopback"),
        ("::1/128", "loopback"),
        ("10.0.0.0/8", "private"),
        ("172.16.0.0/12", "private"),
        ("192.168.0.0/16", "private"),
        ("100.64.0.0/10", "carrier-grade NAT"),
        ("169.254.0.0/16", "link-local"),
        ("fe80::/10", "link-local"),
        ("fc00::/7", "unique-local"),
        ("fec0::/10", "site-local"),
        ("224.0.0.0/4", "multicast"),
        ("ff00::/8", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("192.0.0.0/24", "reserved"),
        ("198.18.0.0/15", "benchmarking"),
        ("192.0.2.0/24", "documentation"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("2001:db8::/32", "documentation"),
    )
)
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries (compatible, 6to4, NAT64, Teredo)."""
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    found = []
    if ip in _IPV4_COMPATIBLE or any(ip in net for net in _NAT64):
        found.append(low32)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    return found


class AddressGuard:
    """Decides which URLs and addresses a fetch may use."""

    def __init__(self, allow: Iterable[IpNetwork | str] = ()) -> None:
        self.allow = tuple(ipaddress.ip_network(n) if isinstance(n, str) else n for n in allow)

    def refusal(self, address: str | IpAddress) -> str | None:
        """Why ``address`` is refused (e.g. ``"loopback"``), or None if it may be used."""
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        if isinstance(ip, ipaddress.IPv6Address):
            if ip.scope_id:
                ip = ipaddress.IPv6Address(str(ip).split("%")[0])
            if ip.ipv4_mapped is not None:  # the kernel connects to the IPv4 address
                ip = ip.ipv4_mapped
        if any(ip in net for net in self.allow) and (
            ip not in CLOUD_METADATA or any(ip in n and n.num_addresses == 1 for n in self.allow)
        ):
            return None
        if ip in CLOUD_METADATA:
            return "cloud metadata"
        for net, name in _REFUSED:
            if ip in net:
                return name
        if isinstance(ip, ipaddress.IPv6Address) and (embedded := _embedded_ipv4(ip)):
            for inner in embedded:
                why = self.refusal(inner)
                if why is not None:
                    return f"{why} ({inner}) embedded in IPv6"
            # A translation prefix (6to4, NAT64, Teredo): the IPv4 address inside decides.
            # ipaddress's own verdict on these prefixes changed between 3.11 patch releases.
            return None
        if not ip.is_global:
            return "not globally routable"
        return None

    def check_address(self, address: str | IpAddress, *, url: str = "") -> None:
        """Raise :class:`RefusedAddress` unless ``address`` may be connected to."""
        why = self.refusal(address)
        if why is not None:
            raise RefusedAddress(f"refused address {address}: {why}", address=str(address), url=url)

    def check_url(self, url: str) -> None:
        """Raise :class:`RefusedUrl` or :class:`RefusedAddress` unless ``url`` may be
        fetched as far as can be told before resolving it."""
        try:
            parts = urlsplit(url)
            host, user, password = parts.hostname, parts.username, parts.password
        except ValueError as exc:
            raise RefusedUrl(f"not a valid URL: {exc}", url=url) from None
        self.check_parts(parts.scheme, user, password, host, url=url)

    def check_parts(
        self, scheme: str, user: str | None, password: str | None, host: str | None, *, url: str
    ) -> None:
        """:meth:`check_url` on a URL already split (by the HTTP client's own parser)."""
        if scheme.lower() not in ("http", "https"):
            raise RefusedUrl(
                f"scheme {scheme!r} is not http or https", url=url, reason="bad_scheme"
            )
        if user or password:
            raise RefusedUrl(
                "credentials in the URL are not allowed", url=url, reason="credentials_in_url"
            )
        if not host:
            raise RefusedUrl("the URL has no host", url=url)
        try:
            literal = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return  # a name: its addresses are checked when it is resolved
        self.check_address(literal, url=url)
