"""Readiness: not ready only when shutting down or a required dependency is down."""

from __future__ import annotations

import socket
import threading

from switchyard.readiness import ForwardedReadiness, Readiness


def _down() -> None:
    raise ConnectionError("refused")


def _up() -> None:
    return None


def test_an_optional_dependency_down_is_degraded_not_unready() -> None:
    report = Readiness({"postgres": _up, "redis": _down}, cache_for=0, optional={"redis"}).report()
    assert report.ready
    assert report.degraded == {"redis": "ConnectionError: refused"}
    body = report.as_dict()
    assert body["status"] == "ready"
    assert body["checks"] == {"postgres": "ok", "redis": "ConnectionError: refused"}
    assert body["degraded"] == {"redis": "ConnectionError: refused"}


def test_a_required_dependency_down_is_unready() -> None:
    readiness = Readiness({"postgres": _down}, cache_for=0)
    readiness.add("redis", _up, required=False)
    report = readiness.report()
    assert not report.ready
    assert report.blocking == {"postgres": "ConnectionError: refused"}
    assert report.degraded == {}
    assert report.as_dict()["status"] == "not ready"


def test_shutting_down_is_unready_whatever_the_checks_say() -> None:
    stop = threading.Event()
    readiness = Readiness({"postgres": _up}, cache_for=60, stopping=stop.is_set)
    assert readiness.report().ready
    stop.set()  # the cached answer must not hide it
    report = readiness.report()
    assert not report.ready and report.stopping
    assert report.as_dict()["status"] == "shutting down"


def test_forwarded_readiness_without_an_answer_is_not_ready() -> None:
    """The gunicorn master asks its workers; none answering means none can serve."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens once it is closed
    report = ForwardedReadiness(f"http://127.0.0.1:{port}/readyz", timeout=1).report()
    assert not report.ready
    assert "workers" in report.failures


def test_forwarded_readiness_keeps_what_the_workers_said() -> None:
    body = (
        b'{"status": "ready", "checks": {"postgres": "ok", "redis": "TimeoutError: t"},'
        b' "degraded": {"redis": "TimeoutError: t"}}'
    )
    report = ForwardedReadiness._parse(body)
    assert report.ready and report.degraded == {"redis": "TimeoutError: t"}
    shutting = ForwardedReadiness._parse(
        b'{"status": 503, "detail": "not ready: shutting down", "checks": {"postgres": "ok"},'
        b' "degraded": {}}'
    )
    assert not shutting.ready and shutting.stopping
    assert shutting.as_dict()["status"] == "shutting down"
