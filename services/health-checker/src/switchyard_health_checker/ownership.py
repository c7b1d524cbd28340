"""Which targets this replica probes: its shards' leases, their targets, change notices.

Guarantees of :class:`Ownership`:

- A target is in the scheduler only while this replica holds its shard's lease
  (``switchyard.targets.shards``) and that lease is known to be valid. A shard lost or
  given up (surplus) leaves the scheduler before it is released; when no renewal has
  succeeded for most of a lease (PostgreSQL unreachable, or a call hanging), every
  target leaves it, since another replica may take the shards soon; they come back with
  the next successful renewal. Phases are anchored to the wall clock, so the next holder
  probes at the same instants and a handover neither skips nor doubles an interval.
- A change through the API (``NOTIFY switchyard_targets``) is applied within a second; a
  full reload every ``resync_seconds``, and each time LISTEN is (re)established, covers
  a notice missed. A read that started before a change never undoes it: an older version
  of a target never replaces a newer one, and a deleted target (ids are never reused) is
  never brought back by a read that still saw it.
- Once :attr:`frozen` (SIGTERM), nothing more is scheduled but the leases are still
  renewed, so the probes in flight finish under valid leases; :meth:`stop` ends the loops
  after the renewal in progress, and only then may the shards be released.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import select
import time
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from switchyard import metrics
from switchyard.config import HealthCheckerSettings
from switchyard.logging import get_logger
from switchyard.targets import state
from switchyard.targets.records import NOTIFY_CHANNEL, TargetRow
from switchyard.targets.shards import ShardLeases
from switchyard_health_checker.flapping import FlapState
from switchyard_health_checker.scheduler import Scheduler
from switchyard_health_checker.targets import Target

log = get_logger(__name__)
MAX_TOMBSTONES = 100_000
# A renewal is trusted for this share of a lease: the rest is margin for clocks and delays.
VALIDITY = 0.8


def as_probe_target(row: TargetRow) -> Target:
    return Target(
        id=row.id,
        name=row.name,
        url=row.url,
        interval_seconds=row.interval_seconds,
        timeout_seconds=min(row.timeout_seconds, row.interval_seconds),
        expected_status=row.expected_status,
        failures_to_down=row.failures_to_down,
        successes_to_up=row.successes_to_up,
        version=row.version,
    )


def as_flap_state(row: TargetRow) -> FlapState:
    return FlapState(
        status=row.status,
        failures=row.consecutive_failures,
        successes=row.consecutive_successes,
        incident_id=row.incident_id,
        since=row.status_changed_at,
        last_checked_at=row.last_checked_at,
    )


class Ownership:
    def __init__(
        self,
        config: HealthCheckerSettings,
        engine: sa.Engine,
        replica: str,
        scheduler: Scheduler,
    ) -> None:
        self.config = config
        self.engine = engine
        self.scheduler = scheduler
        self.leases = ShardLeases(engine, replica, config.lease_seconds)
        self.rows: dict[int, TargetRow] = {}
        self.states: dict[int, FlapState] = {}  # the results' side keeps them current
        self.loaded: set[int] = set()  # shards whose targets are in `rows`
        self.deleted: dict[int, None] = {}  # ids deleted lately, oldest first
        self.valid_until = 0.0  # monotonic: our leases are surely ours until then
        self.frozen = False
        self.full_due = True
        self._done = asyncio.Event()

    # -- the loops -----------------------------------------------------------------------
    async def run(self) -> None:
        listening = asyncio.create_task(self._listening())
        try:
            await self._rebalancing()
        finally:
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)

    def stop(self) -> None:
        """End the loops once the renewal in progress (if any) has finished."""
        self._done.set()

    async def _rebalancing(self) -> None:
        last_full = time.monotonic()
        while not self._done.is_set():
            full = self.full_due or time.monotonic() - last_full >= self.config.resync_seconds
            try:
                await self.rebalance_once(full)
                if full:
                    self.full_due, last_full = False, time.monotonic()
            except Exception as exc:  # PostgreSQL down: keep probing only while surely ours
                log.warning("rebalancing failed", error=f"{type(exc).__name__}: {exc}"[:300])
            self.expire_if_stale()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.rebalance_seconds):
                    await self._done.wait()

    async def rebalance_once(self, full: bool = False) -> None:
        started = time.monotonic()
        result = await asyncio.to_thread(self.leases.rebalance)
        self.valid_until = started + self.config.lease_seconds * VALIDITY
        gone = result.lost | result.surplus
        if gone:
            self.drop({i for i, row in self.rows.items() if row.shard in gone})
            self.loaded -= gone
        if result.surplus:
            await asyncio.to_thread(self.leases.release, result.surplus)
        metrics.health_shards_owned.set(len(self.leases.owned))
        owned = set(self.leases.owned)
        shards = owned if full else owned - self.loaded
        if shards and not self.frozen:
            before = set(self.rows)
            rows = await asyncio.to_thread(state.load, self.engine, shards)
            if time.monotonic() > self.valid_until:
                return  # read while our leases lapsed: expire_if_stale takes over
            shards &= set(self.leases.owned)
            self.loaded |= shards
            self.adopt(rows)
            if full:  # known before the read, in these shards, and gone: deleted unheard
                fresh = {row.id for row in rows}
                self.forget(
                    {i for i in before - fresh if i in self.rows and self.rows[i].shard in shards}
                )
        if result.gained or gone:
            log.info(
                "shards rebalanced",
                owned=len(self.leases.owned),
                gained=len(result.gained),
                dropped=len(gone),
                targets=len(self.rows),
            )

    def expire_if_stale(self) -> None:
        """Stop probing everything when no renewal succeeded for most of a lease."""
        if self.rows and time.monotonic() > self.valid_until:
            log.error("shard leases not renewed in time; probing nothing until they are")
            self.drop(set(self.rows))
            self.loaded.clear()

    # -- the set of targets ------------------------------------------------------------
    def adopt(self, rows: Iterable[TargetRow]) -> None:
        if self.frozen:
            return
        for row in rows:
            if row.shard not in self.leases.owned or row.id in self.deleted:
                continue
            known = self.rows.get(row.id)
            if known is not None and known.version >= row.version:
                continue  # read before a change already applied
            try:
                target = as_probe_target(row)
            except ValueError as exc:
                log.warning("target cannot be probed", target_id=row.id, error=str(exc))
                self.drop({row.id})
                continue
            self.scheduler.upsert(target)
            if known is None:
                self.states[row.id] = as_flap_state(row)
            self.rows[row.id] = row

    def drop(self, ids: Iterable[int]) -> None:
        for target_id in ids:
            self.scheduler.remove(target_id)
            self.rows.pop(target_id, None)
            self.states.pop(target_id, None)

    def forget(self, ids: set[int]) -> None:
        """Deleted targets: dropped, and never adopted again."""
        self.drop(ids)
        self.deleted.update(dict.fromkeys(ids))
        if len(self.deleted) > MAX_TOMBSTONES:
            for old in list(itertools.islice(self.deleted, MAX_TOMBSTONES // 2)):
                del self.deleted[old]

    # -- change notices ------------------------------------------------------------------
    async def _listening(self) -> None:
        """LISTEN for target changes; each notice reloads the targets it names."""
        while True:
            try:
                await self._listen_once()
            except Exception as exc:
                log.warning("listening for target changes failed; retrying", error=str(exc)[:300])
            await asyncio.sleep(1.0)

    async def _listen_once(self) -> None:
        raw = await asyncio.to_thread(self.engine.raw_connection)
        raw.detach()  # never back to the pool: it is LISTENing
        connection: Any = raw.dbapi_connection
        try:
            connection.set_session(autocommit=True)
            connection.cursor().execute(f"LISTEN {NOTIFY_CHANNEL}")
            self.full_due = True  # changes made before LISTEN took effect were not heard
            while True:
                readable, _, _ = await asyncio.to_thread(select.select, [connection], [], [], 1.0)
                if not readable:
                    continue
                connection.poll()
                ids = {int(n.payload) for n in connection.notifies if n.payload.isdigit()}
                connection.notifies.clear()
                if ids:
                    await self.reload(ids)
        finally:
            raw.close()

    async def reload(self, ids: set[int]) -> None:
        found = await asyncio.to_thread(state.load_ids, self.engine, ids)
        self.forget({i for i, row in found.items() if row is None})
        rows = [row for row in found.values() if row is not None]
        self.drop({row.id for row in rows if row.shard not in self.leases.owned})
        self.adopt(rows)
