from __future__ import annotations

import pytest

from switchyard.config import ConfigError, load_settings
from switchyard.fetch.errors import PermanentFetchError, RefusedAddress, RefusedUrl
from switchyard.fetch.guard import AddressGuard

REFUSED = [
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("127.0.0.1", "loopback"),
    ("127.5.6.7", "loopback"),
    ("::1", "loopback"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("169.254.1.1", "link-local"),
    ("fe80::1", "link-local"),
    ("fc00::1", "unique-local"),
    ("fdab::1", "unique-local"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("169.254.169.254", "cloud metadata"),
    ("fd00:ec2::254", "cloud metadata"),
    ("100.100.100.200", "cloud metadata"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:169.254.169.254", "cloud metadata"),
    ("::127.0.0.1", "loopback (127.0.0.1) embedded in IPv6"),
    ("2002:7f00:1::", "loopback (127.0.0.1) embedded in IPv6"),
    ("2002:a9fe:a9fe::1", "cloud metadata (169.254.169.254) embedded in IPv6"),
    ("64:ff9b::a00:1", "private (10.0.0.1) embedded in IPv6"),
    ("64:ff9b::7f00:1", "loopback (127.0.0.1) embedded in IPv6"),
]


@pytest.mark.parametrize(("address", "why"), REFUSED)
def test_non_public_addresses_are_refused(address: str, why: str) -> None:
    guard = AddressGuard()
    assert guard.refusal(address) == why
    with pytest.raises(RefusedAddress) as caught:
        guard.check_address(address)
    assert caught.value.reason == "refused_address"
    assert isinstance(caught.value, PermanentFetchError)


@pytest.mark.parametrize(
    "address",
    ["93.184.215.14", "8.8.8.8", "2606:4700::1111", "2002:5db8:d70e::1", "64:ff9b::808:808"],
)
def test_public_addresses_pass(address: str) -> None:
    assert AddressGuard().refusal(address) is None


def test_allow_list_lets_through_exactly_what_it_names() -> None:
    guard = AddressGuard(["127.0.0.1/32", "10.0.0.0/8"])
    assert guard.refusal("127.0.0.1") is None
    assert guard.refusal("::ffff:127.0.0.1") is None
    assert guard.refusal("127.0.0.2") == "loopback"
    assert guard.refusal("10.9.9.9") is None
    assert guard.refusal("::1") == "loopback"


def test_metadata_needs_to_be_allowed_by_name() -> None:
    assert AddressGuard(["169.254.0.0/16"]).refusal("169.254.169.254") == "cloud metadata"
    assert AddressGuard(["169.254.0.0/16"]).refusal("169.254.1.1") is None
    assert AddressGuard(["169.254.169.254/32"]).refusal("169.254.169.254") is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/a.jpg", "bad_scheme"),
        ("file:///etc/passwd", "bad_scheme"),
        ("gopher://example.com/", "bad_scheme"),
        ("http://user:pw@example.com/a.jpg", "credentials_in_url"),
        ("http://user@example.com/a.jpg", "credentials_in_url"),
        ("http:///a.jpg", "bad_url"),
        ("http://[::1/", "bad_url"),
        ("http://10.0.0.1/a.jpg", "refused_address"),
        ("http://0.0.0.0:8080/", "refused_address"),
        ("http://[::1]/a.jpg", "refused_address"),
        ("http://[::ffff:127.0.0.1]/a.jpg", "refused_address"),
        ("http://[::]/", "refused_address"),
        ("https://169.254.169.254/latest/meta-data/", "refused_address"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(url: str, reason: str) -> None:
    with pytest.raises((RefusedUrl, RefusedAddress)) as caught:
        AddressGuard().check_url(url)
    assert caught.value.reason == reason


def test_names_and_any_port_pass_the_url_check() -> None:
    AddressGuard().check_url("https://cdn.example.com:8443/img/a.jpg?x=1")
    AddressGuard().check_url("HTTP://93.184.215.14:81/a.png")


def test_allow_setting_is_comma_separated_and_names_bad_entries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SWITCHYARD_CONFIG", "")
    monkeypatch.setenv("FETCH__ALLOW", "127.0.0.1/32, ::1,10.0.0.0/8")
    allow = load_settings().fetch.allow
    assert [str(n) for n in allow] == ["127.0.0.1/32", "::1/128", "10.0.0.0/8"]
    assert AddressGuard(allow).refusal("10.1.1.1") is None
    monkeypatch.setenv("FETCH__ALLOW", "127.0.0.1/32,localhost,10.0.0.1/8")
    monkeypatch.setenv("FETCH__MAX_REDIRECTS", "-1")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "FETCH__ALLOW=" in str(caught.value)
    assert "localhost, 10.0.0.1/8" in str(caught.value)
    assert "FETCH__MAX_REDIRECTS='-1'" in str(caught.value)


def test_allow_is_empty_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHYARD_CONFIG", "")
    monkeypatch.delenv("FETCH__ALLOW", raising=False)
    assert load_settings().fetch.allow == ()
