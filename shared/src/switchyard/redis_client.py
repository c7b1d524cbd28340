"""The Redis client for caches: fails fast and never retries.

A cache slower than the database it fronts is no cache: when Redis is down a call costs
at most ``timeout`` seconds, and callers fall back to PostgreSQL.
"""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def fail_fast_client(url: str, timeout: float = 0.5) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 0),
    )
