"""Which health-checker replica probes which targets: shards leased in PostgreSQL.

Guarantee: a shard (targets with ``id mod 64`` equal to it) has at most one holder with
an unexpired lease, and each new holder gets a higher token, which fences every status
write of a former holder (:mod:`.state`). Replicas heartbeat in ``checker_replicas``;
each takes about its fair share (``ceil(64 / live replicas)``) and gives up its surplus
only after it stopped probing those targets (:meth:`ShardLeases.release`), so a shard
is never probed by two replicas at once. A replica that dies loses its shards when their
leases expire (``lease_seconds``); the others take them on their next rebalance.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from switchyard.db.models.targets import SHARDS


@dataclass(frozen=True)
class Rebalance:
    owned: dict[int, int]  # shard -> token, after this round
    gained: set[int]
    lost: set[int]  # expired under us (or taken): stop probing them now
    surplus: set[int]  # ours beyond the fair share: stop probing, then release()


class ShardLeases:
    def __init__(self, engine: sa.Engine, replica: str, lease_seconds: float) -> None:
        self.engine = engine
        self.replica = replica
        self.lease_seconds = lease_seconds
        self.owned: dict[int, int] = {}

    def rebalance(self) -> Rebalance:
        """Heartbeat, renew ours, take free shards up to the fair share; one transaction."""
        params = {"me": self.replica, "lease": self.lease_seconds}
        with self.engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO checker_replicas (replica, seen_at) VALUES (:me, now())"
                    " ON CONFLICT (replica) DO UPDATE SET seen_at = now()"
                ),
                params,
            )
            connection.execute(
                sa.text(
                    "DELETE FROM checker_replicas"
                    " WHERE seen_at < now() - make_interval(secs => 10 * :lease)"
                ),
                params,
            )
            live = connection.execute(
                sa.text(
                    "SELECT count(*) FROM checker_replicas"
                    " WHERE seen_at > now() - make_interval(secs => :lease)"
                ),
                params,
            ).scalar_one()
            fair = math.ceil(SHARDS / max(1, live))
            renewed: dict[int, int] = dict(
                connection.execute(
                    sa.text(
                        "UPDATE checker_shards s"
                        " SET expires_at = now() + make_interval(secs => :lease)"
                        " FROM unnest(CAST(:shards AS smallint[]), CAST(:tokens AS bigint[]))"
                        "  AS v(shard, token)"
                        " WHERE s.shard = v.shard AND s.owner = :me AND s.token = v.token"
                        " AND s.expires_at > now() RETURNING s.shard, s.token"
                    ),
                    {
                        **params,
                        "shards": list(self.owned),
                        "tokens": list(self.owned.values()),
                    },
                ).all()
            )
            gained: dict[int, int] = {}
            if len(renewed) < fair:
                gained = dict(
                    connection.execute(
                        sa.text(
                            "WITH free AS MATERIALIZED (SELECT shard FROM checker_shards"
                            " WHERE expires_at <= now() ORDER BY shard LIMIT :n"
                            " FOR UPDATE SKIP LOCKED)"
                            " UPDATE checker_shards s SET owner = :me, token = s.token + 1,"
                            " expires_at = now() + make_interval(secs => :lease)"
                            " FROM free WHERE s.shard = free.shard RETURNING s.shard, s.token"
                        ),
                        {**params, "n": fair - len(renewed)},
                    ).all()
                )
        lost = set(self.owned) - set(renewed)
        self.owned = {**renewed, **gained}
        surplus = set(sorted(self.owned)[fair:]) if len(self.owned) > fair else set()
        return Rebalance(dict(self.owned), set(gained), lost, surplus)

    def release(self, shards: Iterable[int]) -> None:
        """Give shards up at once (we stopped probing them): another replica takes them
        on its next rebalance instead of after the lease."""
        mine = {shard: self.owned[shard] for shard in shards if shard in self.owned}
        if not mine:
            return
        with self.engine.begin() as connection:
            connection.execute(
                sa.text(
                    "UPDATE checker_shards s SET owner = NULL, expires_at = 'epoch'"
                    " FROM unnest(CAST(:shards AS smallint[]), CAST(:tokens AS bigint[]))"
                    "  AS v(shard, token)"
                    " WHERE s.shard = v.shard AND s.owner = :me AND s.token = v.token"
                ),
                {"me": self.replica, "shards": list(mine), "tokens": list(mine.values())},
            )
        for shard in mine:
            del self.owned[shard]

    def release_all(self) -> None:
        """SIGTERM: every shard back at once."""
        self.release(list(self.owned))
        with self.engine.begin() as connection:
            connection.execute(
                sa.text("DELETE FROM checker_replicas WHERE replica = :me"), {"me": self.replica}
            )
