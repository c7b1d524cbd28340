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

from switchyard.logging import get_logger

log = get_logger(__name__)


class LostLeadership(Exception):
    """The lease moved to another holder (or expired): stop leading."""


class LeaderLease:
    def __init__(self, engine: sa.Engine, name: str, holder: str, lease_seconds: float) -> None:
        self.engine = engine
        self.name = name
        self.holder = holder
        self.lease_seconds = lease_seconds
        self.token: int | None = None

    @property
    def leading(self) -> bool:
        return self.token is not None

    def try_acquire(self) -> bool:
        """Take the lease if it is free or expired, or renew ours; True if we hold it.

        Renewing an expired lease of ours takes a new token too: what we started under
        the old one may overlap another holder's term, so it must not commit."""
        with self.engine.begin() as connection:
            token = connection.execute(
                sa.text(
                    "INSERT INTO leader_leases (name, holder, token, expires_at)"
                    " VALUES (:name, :holder, 1, now() + make_interval(secs => :ttl))"
                    " ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder,"
                    "  token = CASE WHEN leader_leases.holder = EXCLUDED.holder"
                    "   AND leader_leases.expires_at > now() AND leader_leases.token = :token"
                    "   THEN leader_leases.token ELSE leader_leases.token + 1 END,"
                    "  expires_at = EXCLUDED.expires_at"
                    " WHERE leader_leases.expires_at <= now()"
                    "  OR (leader_leases.holder = EXCLUDED.holder"
                    "      AND leader_leases.token = :token)"
                    " RETURNING token"
                ),
                {
                    "name": self.name,
                    "holder": self.holder,
                    "ttl": self.lease_seconds,
                    "token": self.token if self.token is not None else -1,
                },
            ).scalar_one_or_none()
        if token != self.token:
            if token is not None:
                log.info("leadership taken", lease=self.name, token=token)
            elif self.token is not None:
                log.warning("leadership lost", lease=self.name, token=self.token)
        self.token = token
        return token is not None

    def resign(self) -> None:
        """Give the lease up at once (SIGTERM), so another replica takes over now."""
        if self.token is None:
            return
        with self.engine.begin() as connection:
            connection.execute(
                sa.text(
                    "UPDATE leader_leases SET expires_at = now()"
                    " WHERE name = :name AND holder = :holder AND token = :token"
                ),
                {"name": self.name, "holder": self.holder, "token": self.token},
            )
        log.info("leadership resigned", lease=self.name, token=self.token)
        self.token = None

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """A transaction that commits only while we still lead; else LostLeadership.

        The lease row is read ``FOR SHARE``: a takeover (an UPDATE of that row) waits for
        this transaction, so a former leader's late duty either commits before the new
        term starts or fails its check."""
        token = self.token
        if token is None:
            raise LostLeadership(f"not the holder of {self.name}")
        with self.engine.begin() as connection:
            held = connection.execute(
                sa.text(
                    "SELECT 1 FROM leader_leases WHERE name = :name AND holder = :holder"
                    " AND token = :token AND expires_at > now() FOR SHARE"
                ),
                {"name": self.name, "holder": self.holder, "token": token},
            ).first()
            if held is None:
                self.token = None
                raise LostLeadership(f"the lease {self.name} (token {token}) is no longer ours")
            yield connection
