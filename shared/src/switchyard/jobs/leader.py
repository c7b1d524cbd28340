"""Leader election with a PostgreSQL lease and a fencing token.

Guarantee: at most one holder's :meth:`LeaderLease.transaction` commits at a time: it
starts by reading the lease ``FOR SHARE`` and checking its own token and expiry, and a
takeover must update that row, so it waits for the holder's transaction or sees its
expiry. A leader that dies is replaced within one lease (``lease_seconds``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa


class LostLeadership(Exception):
    """The lease moved to another holder (or expired): stop leading."""


class LeaderLease:
    def __init__(self, engine: sa.Engine, name: str, holder: str, lease_seconds: float) -> None:
        self.engine = engine
        self.name = name
        self.holder = holder
        self.lease_seconds = lease_seconds
        self.token: int | None = None

    def try_acquire(self) -> bool:
        """Take the lease if it is free or expired, or renew ours; True if we hold it."""
        raise NotImplementedError

    def resign(self) -> None:
        """Give the lease up at once (SIGTERM), so another replica takes over now."""
        raise NotImplementedError

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """A transaction that commits only while we still lead; else LostLeadership."""
        raise NotImplementedError
        yield  # type: ignore[unreachable]
