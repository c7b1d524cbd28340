"""Readiness: can this process serve, and does each dependency answer right now?

Guarantee: a process is reported not ready only when it cannot serve at all: it is
shutting down, or a dependency that *every* one of its requests needs (a ``required``
check) is down. Any other dependency that is down is reported by name as degraded while
the process stays ready, so a shared dependency's blip never takes every replica out of
its Service at once; the endpoints that need it answer their own 503 instead.

A check is a callable that raises when its dependency is down. Results are cached for a
moment so a busy probe does not become load on the database.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Protocol

import redis
import sqlalchemy as sa
from confluent_kafka.admin import AdminClient

from switchyard.config import Settings
from switchyard.kafka.client_config import common_config

Check = Callable[[], None]


class ReadinessSource(Protocol):
    """What answers /readyz: :class:`Readiness`, or :class:`ForwardedReadiness`."""

    def report(self) -> ReadinessReport: ...


@dataclass(frozen=True)
class ReadinessReport:
    ready: bool
    failures: Mapping[str, str]
    checked: tuple[str, ...] = ()
    required: frozenset[str] = frozenset()
    stopping: bool = False

    @property
    def degraded(self) -> dict[str, str]:
        """Dependencies down that this process can serve without (some endpoints 503)."""
        return {n: e for n, e in self.failures.items() if n not in self.required}

    @property
    def blocking(self) -> dict[str, str]:
        """Dependencies down that every request needs: the reason for not ready."""
        return {n: e for n, e in self.failures.items() if n in self.required}

    def as_dict(self) -> dict[str, object]:
        return {
            "status": "ready" if self.ready else "shutting down" if self.stopping else "not ready",
            "checks": {name: self.failures.get(name, "ok") for name in self.checked},
            "degraded": self.degraded,
        }


class Readiness:
    """Runs named checks in parallel with a deadline and remembers the answer briefly.

    ``optional`` names the checks the process can serve without (reported as degraded);
    every other check is required. ``stopping`` says when the process is shutting down."""

    def __init__(
        self,
        checks: Mapping[str, Check],
        timeout: float = 2.0,
        cache_for: float = 1.0,
        *,
        optional: frozenset[str] | set[str] = frozenset(),
        stopping: Callable[[], bool] = lambda: False,
    ):
        self._checks = dict(checks)
        self._optional = set(optional)
        self._timeout = timeout
        self._cache_for = cache_for
        self._lock = threading.Lock()
        self._cached: tuple[float, ReadinessReport] | None = None
        self._stopping = stopping
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="readiness")

    def add(self, name: str, check: Check, *, required: bool = True) -> None:
        self._checks[name] = check
        if not required:
            self._optional.add(name)

    def report(self) -> ReadinessReport:
        with self._lock:
            now = time.monotonic()
            if self._stopping():
                return ReadinessReport(False, {}, tuple(self._checks), stopping=True)
            if self._cached and now - self._cached[0] < self._cache_for:
                return self._cached[1]
            futures = {name: self._pool.submit(check) for name, check in self._checks.items()}
            failures: dict[str, str] = {}
            deadline = now + self._timeout
            for name, future in futures.items():
                try:
                    future.result(timeout=max(0.0, deadline - time.monotonic()))
                except FutureTimeout:
                    failures[name] = f"no answer within {self._timeout:g}s"
                except Exception as exc:  # a check's failure is the report, not an error
                    failures[name] = f"{type(exc).__name__}: {exc}"[:300]
            required = frozenset(self._checks) - self._optional
            report = ReadinessReport(
                not (failures.keys() & required), failures, tuple(self._checks), required
            )
            self._cached = (time.monotonic(), report)
            return report


def postgres_check(engine: sa.Engine) -> Check:
    def check() -> None:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))

    return check


def redis_check(client: redis.Redis) -> Check:
    def check() -> None:
        client.ping()

    return check


def kafka_check(settings: Settings) -> Check:
    config: dict[str, Any] = {
        **common_config(settings, "readiness"),
        "log_level": 0,
        "logger": _SilentLogger(),
    }
    admin = AdminClient(config)

    def check() -> None:
        admin.list_topics(timeout=1.5)

    return check


class _SilentLogger:
    """librdkafka logs every failed connect; readiness reports that already."""

    def log(self, *_: object, **__: object) -> None:
        return None


class ForwardedReadiness:
    """The readiness another process of the same server reports on ``url`` (its /readyz).

    The API's gunicorn master serves the admin port; its workers hold the dependencies,
    so the master asks one of them. No answer means the workers cannot serve: not ready.
    """

    def __init__(self, url: str, timeout: float = 3.0) -> None:
        self._url = url
        self._timeout = timeout

    def report(self) -> ReadinessReport:
        try:
            with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                self._url, timeout=self._timeout
            ) as response:
                return self._parse(response.read())
        except urllib.error.HTTPError as exc:
            return self._parse(exc.read(), fallback=f"{self._url} answered {exc.code}")
        except Exception as exc:  # no worker answered: the report says so
            return ReadinessReport(False, {"workers": f"{type(exc).__name__}: {exc}"[:300]})

    @staticmethod
    def _parse(body: bytes, fallback: str | None = None) -> ReadinessReport:
        try:
            answer = json.loads(body)
            checks: dict[str, str] = dict(answer["checks"])
            degraded: dict[str, str] = dict(answer.get("degraded") or {})
        except (ValueError, KeyError, TypeError):
            return ReadinessReport(False, {"workers": fallback or "unreadable /readyz"})
        failures = {name: state for name, state in checks.items() if state != "ok"}
        ready = answer.get("status") == "ready"
        required = frozenset(checks) - frozenset(degraded) if not ready else frozenset()
        return ReadinessReport(
            ready,
            failures,
            tuple(checks),
            required,
            stopping=answer.get("detail") == "not ready: shutting down",
        )
