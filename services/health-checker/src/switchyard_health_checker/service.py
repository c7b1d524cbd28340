"""The health-checker's main loop: shard leases, change notices, the scheduler, results.

Guarantees:

- A target is probed only by the replica holding its shard (``switchyard.targets.shards``)
  and only while that lease is known to be valid: when rebalancing fails for most of a
  lease (PostgreSQL unreachable), this replica stops probing everything, since another
  one may take its shards soon. A shard given up (surplus) is dropped from the scheduler
  first, then released; phases are anchored to the wall clock, so the next holder probes
  at the same instants and a handover neither skips nor doubles an interval.
- A change of a target through the API (``NOTIFY switchyard_targets``) is applied within
  a second; a full reload every ``resync_seconds`` covers a lost notice.
- Every result is published as ``target.checked`` (the batcher stores it in
  ``target_checks``); the status (flap suppression, :mod:`.flapping`) is decided here and
  each change is recorded and announced exactly once (``switchyard.targets.state``,
  fenced by the shard's lease token). Counters are saved in batches, so a replica taking
  over continues a run of failures instead of restarting it.
- SIGTERM: probes in flight get ``shutdown_grace_seconds``, progress is saved, the shards
  go back at once (another replica takes them on its next rebalance). SIGKILL: the leases
  expire within ``lease_seconds`` and another replica takes over.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import select
import socket
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa

from switchyard.config import Settings
from switchyard.events import CONTENT_TYPE, ID_HEADER, TYPE_HEADER, envelope
from switchyard.fetch.guard import AddressGuard
from switchyard.kafka.producer import EventProducer, OutgoingRecord
from switchyard.kafka.topics import HEALTH, TARGETS, topic_name
from switchyard.logging import get_logger
from switchyard.service import WorkerContext
from switchyard.targets import state
from switchyard.targets.records import NOTIFY_CHANNEL, Change, Progress, TargetRow
from switchyard.targets.shards import ShardLeases
from switchyard_health_checker.flapping import FlapState, step
from switchyard_health_checker.probes import Prober, ProbeSettings
from switchyard_health_checker.scheduler import Limits, Scheduler
from switchyard_health_checker.targets import ProbeResult, Target

log = get_logger(__name__)
SOURCE = "switchyard/health-checker"


def run(context: WorkerContext) -> None:
    checker = Checker(context.settings, context.engine, context.producer)
    crashed: list[BaseException] = []

    def loop() -> None:
        try:
            asyncio.run(checker.run(context.stop.is_set))
        except BaseException as exc:
            crashed.append(exc)
            log.exception("health-checker crashed")
            context.stop.set()

    thread = threading.Thread(target=contextvars.copy_context().run, args=(loop,), name="checker")
    thread.start()
    while thread.is_alive():
        thread.join(0.5)  # short waits keep the main thread free for SIGTERM
    if crashed:
        raise RuntimeError("the health-checker crashed") from crashed[0]


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


class Checker:
    def __init__(self, settings: Settings, engine: sa.Engine, producer: EventProducer) -> None:
        self.settings = settings
        self.config = settings.health_checker
        self.engine = engine
        self.producer = producer
        self.replica = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.leases = ShardLeases(engine, self.replica, self.config.lease_seconds)
        self.rows: dict[int, TargetRow] = {}
        self.states: dict[int, FlapState] = {}
        self.progress: dict[int, Progress] = {}
        self.outgoing: list[OutgoingRecord] = []
        self.health_topic = topic_name(settings, HEALTH)
        self.targets_topic = topic_name(settings, TARGETS)
        self.valid_until = 0.0  # monotonic: our leases are surely ours until then
        self.scheduler: Scheduler | None = None

    # -- the loop ----------------------------------------------------------------------
    async def run(self, stopping: Any) -> None:
        guard = AddressGuard(self.settings.fetch.allow) if self.config.guard else None
        probe_settings = ProbeSettings(keep_alive=self.config.keep_alive, guard=guard)
        limits = Limits(self.config.max_in_flight, self.config.max_per_host)
        async with Prober(probe_settings) as prober:
            scheduler = Scheduler(prober.probe, self.deliver, limits)
            async with scheduler:
                self.scheduler = scheduler
                log.info("health-checker running", replica=self.replica)
                tasks = [
                    asyncio.create_task(self.rebalancing()),
                    asyncio.create_task(self.listening()),
                    asyncio.create_task(self.flushing()),
                ]
                try:
                    while not stopping():
                        for task in tasks:
                            if task.done():
                                task.result()  # a crashed loop stops the process
                        await asyncio.sleep(0.2)
                finally:
                    await scheduler.close(self.config.shutdown_grace_seconds)
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
                    await asyncio.to_thread(self.flush)
                    await asyncio.to_thread(self.leases.release_all)
                    log.info("shards released", replica=self.replica)

    # -- which targets are ours ----------------------------------------------------------
    async def rebalancing(self) -> None:
        last_full = time.monotonic()
        while True:
            try:
                await self.rebalance_once(
                    full=time.monotonic() - last_full > self.config.resync_seconds
                )
                if time.monotonic() - last_full > self.config.resync_seconds:
                    last_full = time.monotonic()
            except Exception as exc:  # PostgreSQL down: keep probing only while surely ours
                log.warning("rebalancing failed", error=f"{type(exc).__name__}: {exc}"[:300])
                if time.monotonic() > self.valid_until and self.rows:
                    log.error("leases may have expired; probing nothing until they are back")
                    self.drop(set(self.rows))
                    self.leases.owned.clear()
            await asyncio.sleep(self.config.rebalance_seconds)

    async def rebalance_once(self, full: bool = False) -> None:
        started = time.monotonic()
        result = await asyncio.to_thread(self.leases.rebalance)
        self.valid_until = started + self.config.lease_seconds * 0.8
        gone = result.lost | result.surplus
        if gone:
            self.drop({i for i, row in self.rows.items() if row.shard in gone})
        if result.surplus:
            await asyncio.to_thread(self.leases.release, result.surplus)
        if result.gained or full:
            shards = set(self.leases.owned) if full else result.gained
            rows = await asyncio.to_thread(state.load, self.engine, shards)
            self.adopt(rows)
            if full:
                fresh = {row.id for row in rows}
                self.drop({i for i in self.rows if i not in fresh})
        if result.gained or gone:
            log.info(
                "shards rebalanced",
                owned=len(self.leases.owned),
                gained=len(result.gained),
                dropped=len(gone),
                targets=len(self.rows),
            )

    def adopt(self, rows: list[TargetRow]) -> None:
        assert self.scheduler is not None
        for row in rows:
            if row.shard not in self.leases.owned:
                continue
            known = self.rows.get(row.id)
            try:
                target = as_probe_target(row)
            except ValueError as exc:
                log.warning("target cannot be probed", target_id=row.id, error=str(exc))
                self.drop({row.id})
                continue
            if known is None or known.version != row.version:
                self.scheduler.upsert(target)
            if known is None:
                self.states[row.id] = as_flap_state(row)
            self.rows[row.id] = row

    def drop(self, ids: set[int]) -> None:
        assert self.scheduler is not None
        for target_id in ids:
            self.scheduler.remove(target_id)
            self.rows.pop(target_id, None)
            self.states.pop(target_id, None)

    # -- change notices ------------------------------------------------------------------
    async def listening(self) -> None:
        """LISTEN for target changes; each notice reloads the targets it names."""
        while True:
            try:
                await self.listen_once()
            except Exception as exc:
                log.warning("listening for target changes failed; retrying", error=str(exc)[:300])
            await asyncio.sleep(1.0)

    async def listen_once(self) -> None:
        raw = await asyncio.to_thread(self.engine.raw_connection)
        raw.detach()  # never back to the pool: it is LISTENing
        connection: Any = raw.dbapi_connection
        try:
            connection.set_session(autocommit=True)
            connection.cursor().execute(f"LISTEN {NOTIFY_CHANNEL}")
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
        self.drop({i for i, row in found.items() if row is None})
        rows = [row for row in found.values() if row is not None]
        self.drop({row.id for row in rows if row.shard not in self.leases.owned})
        self.adopt(rows)

    # -- results -------------------------------------------------------------------------
    async def deliver(self, target: Target, result: ProbeResult) -> None:
        row = self.rows.get(target.id)
        if row is None:
            return
        before = self.states.get(target.id, FlapState())
        after, _ = step(before, target, result)
        self.states[target.id] = after
        self.outgoing.append(self.checked_event(row, result))
        self.progress[target.id] = Progress(
            target.id,
            row.shard,
            after.failures,
            after.successes,
            result.checked_at,
            result.latency_ms,
            result.status_code,
            None if result.error is None else str(result.error),
        )
        if after.status != before.status and after.status in ("up", "down"):
            change = Change(
                target.id,
                row.shard,
                after.status,
                str(uuid.uuid4()),
                result.checked_at,
                None if result.error is None else str(result.error),
                after.failures if after.status == "down" else after.successes,
            )
            token = self.leases.owned.get(row.shard)
            if token is not None:
                changed = await asyncio.to_thread(
                    state.record_change,
                    self.engine,
                    change,
                    self.replica,
                    token,
                    self.targets_topic,
                )
                if changed is not None:
                    log.info(
                        "target status changed",
                        target_id=target.id,
                        status=after.status,
                        incident_id=changed.incident_id,
                    )

    def checked_event(self, row: TargetRow, result: ProbeResult) -> OutgoingRecord:
        event_id = str(uuid.uuid4())
        data = {
            "target_id": row.id,
            "name": row.name,
            "url": row.url,
            "status": result.status,
            "latency_ms": round(result.latency_ms, 3),
            "status_code": result.status_code,
            "error": None if result.error is None else str(result.error),
            "checked_at": result.checked_at.isoformat(),
        }
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        value = orjson.dumps(envelope(event_id, SOURCE, "target.checked", now, data))
        headers = [
            ("content-type", CONTENT_TYPE.encode()),
            (ID_HEADER, event_id.encode()),
            (TYPE_HEADER, b"target.checked"),
        ]
        return OutgoingRecord(self.health_topic, value, str(row.id).encode(), headers)

    async def flushing(self) -> None:
        saved_at = time.monotonic()
        while True:
            await asyncio.sleep(min(0.1, self.config.flush_seconds))
            if self.outgoing:
                records, self.outgoing = self.outgoing, []
                try:
                    self.producer.send(records)  # delivery is confirmed in the background
                except Exception as exc:  # a check result is a sample: a lost one is a gap
                    log.warning("publishing checks failed", checks=len(records), error=str(exc))
            if self.progress and time.monotonic() - saved_at >= self.config.flush_seconds:
                saved_at = time.monotonic()
                await asyncio.to_thread(self.flush)

    def flush(self) -> None:
        """Save the counters and last checks (fenced by our shard tokens)."""
        items, self.progress = list(self.progress.values()), {}
        if not items:
            return
        try:
            state.save_progress(self.engine, items, self.replica, dict(self.leases.owned))
        except Exception as exc:  # the next results carry newer values anyway
            log.warning("saving progress failed", targets=len(items), error=str(exc)[:300])
