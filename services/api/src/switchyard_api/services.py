"""The dependencies one API process shares across requests, created on first use.

Guarantee: no dependency is required for readiness. Each endpoint needs only some of
them (POST /logs Kafka, coupons PostgreSQL, the caches Redis, which they step around),
so one that is down is reported as degraded in /readyz and the endpoints that need it
answer their own 503; the pod stays in its Service.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

import redis
import sqlalchemy as sa

from switchyard.config import Settings
from switchyard.db.engine import create_engine
from switchyard.kafka.producer import EventProducer
from switchyard.readiness import Readiness, kafka_check, postgres_check, redis_check
from switchyard.redis_client import fail_fast_client

T = TypeVar("T")


@dataclass
class ApiServices:
    settings: Settings
    _parts: dict[str, Any] = field(default_factory=dict)

    def part(self, name: str, factory: Callable[[ApiServices], T]) -> T:
        """A domain's helper object (store, cache, ...), built once per process."""
        if name not in self._parts:
            self._parts[name] = factory(self)
        return self._parts[name]  # type: ignore[no-any-return]

    @cached_property
    def engine(self) -> sa.Engine:
        return create_engine(self.settings)

    @cached_property
    def redis(self) -> redis.Redis:
        return fail_fast_client(self.settings.redis_url)

    @cached_property
    def producer(self) -> EventProducer:
        # Created after gunicorn forks (no preload), so each worker has its own.
        return EventProducer(self.settings, "api")

    @cached_property
    def readiness(self) -> Readiness:
        checks = {
            "postgres": postgres_check(self.engine),
            "redis": redis_check(self.redis),
            "kafka": kafka_check(self.settings),
        }
        return Readiness(checks, optional=frozenset(checks))

    def key(self, name: str) -> str:
        """A Redis key in this stack's namespace."""
        return f"{self.settings.redis_key_prefix}{name}"

    def close(self) -> None:
        for name, close in (("producer", "close"), ("redis", "close"), ("engine", "dispose")):
            if name in self.__dict__:
                getattr(self.__dict__[name], close)()
