"""Readiness: does each dependency answer right now?

A check is a callable that raises when its dependency is down. Results are cached for a
moment so a busy probe does not become load on the database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import redis
import sqlalchemy as sa
from confluent_kafka.admin import AdminClient

Check = Callable[[], None]


@dataclass(frozen=True)
class ReadinessReport:
    ready: bool
    failures: Mapping[str, str]
    checked: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "status": "ready" if self.ready else "not ready",
            "checks": {name: self.failures.get(name, "ok") for name in self.checked},
        }


class Readiness:
    """Runs named checks in parallel with a deadline and remembers the answer briefly."""

    def __init__(self, checks: Mapping[str, Check], timeout: float = 2.0, cache_for: float = 1.0):
        self._checks = dict(checks)
        self._timeout = timeout
        self._cache_for = cache_for
        self._lock = threading.Lock()
        self._cached: tuple[float, ReadinessReport] | None = None
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, len(self._checks)), thread_name_prefix="readiness"
        )

    def add(self, name: str, check: Check) -> None:
        self._checks[name] = check

    def report(self) -> ReadinessReport:
        with self._lock:
            now = time.monotonic()
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
            report = ReadinessReport(not failures, failures, tuple(self._checks))
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


def kafka_check(bootstrap_servers: str) -> Check:
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers,
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
