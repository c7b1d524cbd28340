"""The health-checker's main loop: shard leases, change notices, the scheduler, results.

Guarantees:

- A target is probed only by the replica holding its shard (``switchyard.targets.shards``)
  and only while that lease is known to be valid: when renewing fails (or hangs) for most
  of a lease, this replica stops probing everything, since another one may take its
  shards soon. A shard given up (surplus) is dropped from the scheduler first, then
  released; phases are anchored to the wall clock, so the next holder probes at the same
  instants and a handover neither skips nor doubles an interval (:mod:`.ownership`).
- A change of a target through the API (``NOTIFY switchyard_targets``) is applied within
  a second; a full reload every ``resync_seconds`` covers a lost notice.
- Every result is published as ``target.checked`` (the batcher stores it in
  ``target_checks``); the status (flap suppression, :mod:`.flapping`) is decided here and
  each change is recorded and announced exactly once (``switchyard.targets.state``,
  fenced by the shard's lease token); a change that could not be recorded (PostgreSQL
  failed) is tried again with the next result instead of being lost. Counters are saved
  in batches, so a replica taking over continues a run of failures instead of restarting
  it.
- SIGTERM: no new probe starts; probes in flight get ``shutdown_grace_seconds`` while the
  leases are still renewed; their results are published and the progress saved; then
  the shards go back at once (another replica takes them on its next rebalance).
  SIGKILL: the leases expire within ``lease_seconds`` and another replica takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
import sqlalchemy as sa

from switchyard import metrics
from switchyard.config import Settings
from switchyard.events import CONTENT_TYPE, ID_HEADER, TYPE_HEADER, envelope
from switchyard.fetch.guard import AddressGuard
from switchyard.kafka.producer import EventProducer, OutgoingRecord
from switchyard.kafka.topics import HEALTH, TARGETS, topic_name
from switchyard.logging import get_logger
from switchyard.service import WorkerContext
from switchyard.targets import state
from switchyard.targets.records import Change, Progress, TargetRow
from switchyard_health_checker.flapping import FlapState, step
from switchyard_health_checker.ownership import Ownership
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


class Checker:
    def __init__(self, settings: Settings, engine: sa.Engine, producer: EventProducer) -> None:
        self.settings = settings
        self.config = settings.health_checker
        self.engine = engine
        self.producer = producer
        self.replica = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.outgoing: list[OutgoingRecord] = []
        self.progress: dict[int, Progress] = {}
        self.health_topic = topic_name(settings, HEALTH)
        self.targets_topic = topic_name(settings, TARGETS)
        self._ownership: Ownership | None = None
        self._done = asyncio.Event()

    @property
    def ownership(self) -> Ownership:
        assert self._ownership is not None, "Checker.run has not started"
        return self._ownership

    # -- the loop ----------------------------------------------------------------------
    async def run(self, stopping: Callable[[], bool]) -> None:
        guard = AddressGuard(self.settings.fetch.allow) if self.config.guard else None
        probe_settings = ProbeSettings(keep_alive=self.config.keep_alive, guard=guard)
        limits = Limits(self.config.max_in_flight, self.config.max_per_host)
        async with Prober(probe_settings) as prober:
            scheduler = Scheduler(prober.probe, self.deliver, limits)
            async with scheduler:
                self._ownership = Ownership(self.config, self.engine, self.replica, scheduler)
                log.info("health-checker running", replica=self.replica)
                owning = asyncio.create_task(self.ownership.run())
                flushing = asyncio.create_task(self.flushing())
                try:
                    while not stopping():
                        for task in (owning, flushing):
                            if task.done():
                                task.result()  # a crashed loop stops the process
                        self.ownership.expire_if_stale()  # also when a renewal hangs
                        await asyncio.sleep(0.2)
                finally:
                    await self.shut_down(scheduler, owning, flushing)

    async def shut_down(
        self, scheduler: Scheduler, owning: asyncio.Task[None], flushing: asyncio.Task[None]
    ) -> None:
        # The leases are renewed until the probes in flight are done: their results are
        # recorded under a valid lease and no other replica probes those targets meanwhile.
        self.ownership.frozen = True
        try:
            await scheduler.close(self.config.shutdown_grace_seconds)
        finally:
            self._done.set()
            self.ownership.stop()
            # Awaited, not cancelled: a renewal cancelled mid-call would run on in its
            # thread and could take shards (or heartbeat) after they were released.
            await asyncio.gather(flushing, owning, return_exceptions=True)
            self.publish()
            await asyncio.to_thread(self.flush)
            await asyncio.to_thread(self.ownership.leases.release_all)
            metrics.health_shards_owned.set(0)
            log.info("shards released", replica=self.replica)

    # -- results -------------------------------------------------------------------------
    async def deliver(self, target: Target, result: ProbeResult) -> None:
        owned = self.ownership
        row = owned.rows.get(target.id)
        if row is None:
            return
        before = owned.states.get(target.id, FlapState())
        after, _ = step(before, target, result)
        owned.states[target.id] = after
        self.outgoing.append(self.checked_event(row, result))
        error = None if result.error is None else str(result.error)
        self.progress[target.id] = Progress(
            target.id,
            row.shard,
            after.failures,
            after.successes,
            result.checked_at,
            result.latency_ms,
            result.status_code,
            error,
        )
        if after.status != before.status and after.status in ("up", "down"):
            consecutive = after.failures if after.status == "down" else after.successes
            change = Change(
                target.id,
                row.shard,
                after.status,
                str(uuid.uuid4()),
                result.checked_at,
                error,
                consecutive,
            )
            if not await self.record(change) and target.id in owned.rows:
                # Not recorded: keep the old status, so the next result decides it again.
                owned.states[target.id] = dataclasses.replace(
                    after, status=before.status, incident_id=before.incident_id, since=before.since
                )

    async def record(self, change: Change) -> bool:
        """Record (and announce) a change of status; False if PostgreSQL failed."""
        token = self.ownership.leases.owned.get(change.shard)
        if token is None:
            return True  # no longer ours: the new holder decides
        try:
            changed = await asyncio.to_thread(
                state.record_change,
                self.engine,
                change,
                self.replica,
                token,
                self.targets_topic,
            )
        except Exception as exc:
            log.warning(
                "recording a change of status failed; the next result retries it",
                target_id=change.target_id,
                error=f"{type(exc).__name__}: {exc}"[:300],
            )
            return False
        if changed is not None:
            metrics.health_status_changes_total.labels(change.status).inc()
            log.info(
                "target status changed",
                target_id=change.target_id,
                status=change.status,
                incident_id=changed.incident_id,
            )
        return True

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
        while not self._done.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(0.1, self.config.flush_seconds)):
                    await self._done.wait()
            self.publish()
            if self.progress and time.monotonic() - saved_at >= self.config.flush_seconds:
                saved_at = time.monotonic()
                await asyncio.to_thread(self.flush)

    def publish(self) -> None:
        """Hand the results to the producer (delivery is confirmed in the background)."""
        if not self.outgoing:
            return
        records, self.outgoing = self.outgoing, []
        try:
            self.producer.send(records)
        except Exception as exc:  # a check result is a sample: a lost one is a gap
            metrics.health_checks_unpublished_total.inc(len(records))
            log.warning("publishing checks failed", checks=len(records), error=str(exc))

    def flush(self) -> None:
        """Save the counters and last checks (fenced by our shard tokens)."""
        items, self.progress = list(self.progress.values()), {}
        if not items:
            return
        try:
            tokens = dict(self.ownership.leases.owned)
            state.save_progress(self.engine, items, self.replica, tokens)
        except Exception as exc:  # the next results carry newer values anyway
            log.warning("saving progress failed", targets=len(items), error=str(exc)[:300])
