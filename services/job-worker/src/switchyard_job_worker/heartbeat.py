"""The heartbeat: the leases of every job this worker holds, renewed in one UPDATE.

Guarantee: a job runs (or waits for its result to be stored) only while its lease is
ours. Every ``lease_seconds / 3`` the leases of all held jobs are extended; a token the
SQL does not return (the reaper took the job back, or it was finished elsewhere) is
cancelled at once. When renewing fails (PostgreSQL unreachable), a job whose lease may
have expired by now (claimed or last renewed more than ``0.8 x lease_seconds`` ago by
this process's clock) is cancelled too, so it is never still running when another
worker starts it after the reaper.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from switchyard.logging import get_logger

log = get_logger(__name__)

Renew = Callable[[Sequence[int]], set[int]]  # tokens -> the tokens still held
SAFETY = 0.8  # of a lease: past this without a renewal, assume it expired


class HeldJobs(Protocol):
    def held_leases(self) -> dict[int, float]: ...
    def lost(self, tokens: Sequence[int] | set[int], why: str) -> None: ...


class Heartbeat:
    def __init__(self, renew: Renew, pool: HeldJobs, lease_seconds: float) -> None:
        self._renew = renew
        self._pool = pool
        self.lease_seconds = lease_seconds
        self.interval = lease_seconds / 3
        self._renewed: dict[int, float] = {}  # token -> monotonic start of its last renewal
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="job-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def beat(self) -> None:
        held = self._pool.held_leases()
        self._renewed = {t: max(self._renewed.get(t, 0.0), at) for t, at in held.items()}
        if not held:
            return
        began = time.monotonic()
        try:
            kept = self._renew(list(held))
        except Exception as exc:
            log.warning("renewing job leases failed", error=f"{exc}"[:300], jobs=len(held))
            limit = began - SAFETY * self.lease_seconds
            expired = [t for t, at in self._renewed.items() if at < limit]
            if expired:
                self._pool.lost(expired, "lease not renewed in time")
            return
        for token in kept:
            self._renewed[token] = began
        gone = set(held) - kept
        if gone:
            self._pool.lost(gone, "lease taken back")
