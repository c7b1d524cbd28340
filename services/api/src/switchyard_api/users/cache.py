"""Cache-aside for users, safe against the stale-fill race.

The race: a reader misses, loads the old row, a writer commits and invalidates, then the
reader stores the old row, and every later read sees it. Each user has a generation
counter; a writer bumps it when it invalidates (after its commit, before its response),
and a reader stores what it loaded only if the generation is still the one it saw before
loading. So a fill that raced a write is dropped.

Redis trouble never fails a request: reads fall through to PostgreSQL.
"""

from __future__ import annotations

import redis

from switchyard import metrics
from switchyard.logging import get_logger

log = get_logger(__name__)

# KEYS[1] generation, KEYS[2] entry; ARGV[1] generation seen, ARGV[2] value, ARGV[3] ttl
_FILL_IF_UNCHANGED = """
local current = redis.call('GET', KEYS[1]) or ''
if current == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
"""


def _as_bytes(value: object) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return str(value).encode()


class UserCache:
    def __init__(self, client: redis.Redis, prefix: str, ttl_seconds: int) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl = ttl_seconds
        self._fill = client.register_script(_FILL_IF_UNCHANGED)

    def _entry(self, user_id: int) -> str:
        return f"{self._prefix}user:{user_id}"

    def _generation(self, user_id: int) -> str:
        return f"{self._prefix}user:{user_id}:gen"

    def get(self, user_id: int) -> tuple[bytes | None, str]:
        """The cached JSON (or None) and the generation to fill with after a miss."""
        try:
            entry, generation = self._client.mget(self._entry(user_id), self._generation(user_id))
        except redis.RedisError as exc:
            log.warning("user cache unavailable; reading PostgreSQL", error=str(exc))
            metrics.cache_requests_total.labels("users", "error").inc()
            return None, "unavailable"
        metrics.cache_requests_total.labels("users", "hit" if entry else "miss").inc()
        return _as_bytes(entry), (_as_bytes(generation) or b"").decode()

    def fill(self, user_id: int, generation: str, value: bytes) -> None:
        if generation == "unavailable":
            return
        try:
            self._fill(
                keys=[self._generation(user_id), self._entry(user_id)],
                args=[generation, value, self._ttl],
            )
        except redis.RedisError as exc:
            log.warning("user cache fill failed", error=str(exc))

    def invalidate(self, user_id: int) -> None:
        """Drop the entry and bump the generation, atomically."""
        try:
            pipe = self._client.pipeline(transaction=True)
            pipe.incr(self._generation(user_id))
            # Outlives any entry (and any in-flight fill), then goes away with it.
            pipe.expire(self._generation(user_id), self._ttl + 60)
            pipe.delete(self._entry(user_id))
            pipe.execute()
        except redis.RedisError as exc:
            # PostgreSQL has the change; the entry, if any, expires within the TTL.
            log.error("user cache invalidation failed", user_id=user_id, error=str(exc))
