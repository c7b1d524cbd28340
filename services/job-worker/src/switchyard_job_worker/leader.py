"""The scheduler leader: one job-worker replica promotes due jobs, fires schedules, reaps
lost leases and wakes parked jobs.

Guarantee: each duty runs inside :meth:`switchyard.jobs.leader.LeaderLease.transaction`,
which commits only while this replica still holds the ``job-scheduler`` lease, so a
paused former leader's late write fails instead of doubling a run (and the unique
``(schedule, fire time)`` row would refuse it anyway). The lease is renewed every third
of ``JOBS__LEADER_LEASE_SECONDS``; a leader that dies is replaced within one lease; on
SIGTERM it resigns, so another replica takes over at once. A failing duty is logged and
tried again on its next turn; it never stops the others nor the process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

import sqlalchemy as sa

from switchyard.errors import is_transient
from switchyard.jobs.leader import LostLeadership
from switchyard.lifecycle import StopSignal
from switchyard.logging import get_logger

log = get_logger(__name__)

LEADER_NAME = "job-scheduler"
WARN_EVERY_SECONDS = 30.0  # a duty failing every tick is logged this often


class Lease(Protocol):
    """What the loop uses of :class:`~switchyard.jobs.leader.LeaderLease`."""

    lease_seconds: float

    def try_acquire(self) -> bool: ...
    def resign(self) -> None: ...
    def transaction(self) -> AbstractContextManager[sa.Connection]: ...


@dataclass(frozen=True)
class Duty:
    name: str
    every_seconds: float
    run: Callable[[sa.Connection], int]  # -> how many things it did
    quiet: bool = False  # routine (every tick): logged at debug


class SchedulerLeader:
    def __init__(self, lease: Lease, duties: Sequence[Duty], stop: StopSignal) -> None:
        self.lease = lease
        self.duties = list(duties)
        self._stop = stop
        self.leading = False
        self._due = {d.name: 0.0 for d in self.duties}
        self._warned: dict[str, float] = {}

    def run(self) -> None:
        renew_every = self.lease.lease_seconds / 3
        next_renewal = 0.0
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_renewal:
                    self._renew()
                    next_renewal = now + renew_every
                if self.leading:
                    self._run_due(now)
                wake = min([next_renewal, *self._due.values()] if self.leading else [next_renewal])
                self._stop.wait(max(0.01, wake - time.monotonic()))
        finally:
            if self.leading:
                self._resign()

    def _renew(self) -> None:
        try:
            leading = self.lease.try_acquire()
        except Exception as exc:
            self._warn("lease", exc)
            leading = False
        if leading != self.leading:  # the lease logs the change itself
            self._due = dict.fromkeys(self._due, 0.0)
        self.leading = leading

    def _run_due(self, now: float) -> None:
        for duty in self.duties:
            if now < self._due[duty.name] or not self.leading:
                continue
            self._due[duty.name] = now + duty.every_seconds
            try:
                with self.lease.transaction() as connection:
                    done = duty.run(connection)
            except LostLeadership:
                log.warning("leadership lost during a duty", duty=duty.name)
                self.leading = False
                return
            except Exception as exc:
                self._warn(duty.name, exc)
                continue
            if done:
                (log.debug if duty.quiet else log.info)(
                    "leader duty done", duty=duty.name, count=done
                )

    def _resign(self) -> None:
        try:
            self.lease.resign()
        except Exception as exc:  # the lease expires by itself
            log.warning("resigning the scheduler lease failed", error=f"{exc}"[:300])
        self.leading = False

    def _warn(self, what: str, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned.get(what, -WARN_EVERY_SECONDS) < WARN_EVERY_SECONDS:
            return
        self._warned[what] = now
        if is_transient(exc):
            log.warning("scheduler duty failed; retrying", duty=what, error=f"{exc}"[:300])
        else:
            log.error("scheduler duty failed", duty=what, exc_info=exc)
