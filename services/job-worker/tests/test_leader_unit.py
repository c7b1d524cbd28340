"""The leader loop with a fake lease: duties only while leading, resign on stop."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import sqlalchemy as sa

from switchyard.jobs.leader import LostLeadership
from switchyard.lifecycle import StopSignal
from switchyard_job_worker.leader import Duty, SchedulerLeader

from .conftest import wait_for


class FakeLease:
    lease_seconds = 0.3

    def __init__(self) -> None:
        self.leading = threading.Event()
        self.steal = threading.Event()  # the next transaction finds the lease gone
        self.resigned = 0
        self.acquired = 0

    def try_acquire(self) -> bool:
        self.acquired += 1
        return self.leading.is_set()

    def resign(self) -> None:
        self.resigned += 1

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        if self.steal.is_set():
            self.steal.clear()
            self.leading.clear()
            raise LostLeadership("another holder")
        yield cast(sa.Connection, None)


def test_duties_run_only_while_leading_and_the_leader_resigns_on_stop() -> None:
    lease, stop = FakeLease(), StopSignal()
    runs = {"fast": 0, "slow": 0, "broken": 0}

    def duty(name: str) -> Any:
        def run(connection: sa.Connection) -> int:
            runs[name] += 1
            if name == "broken":
                raise RuntimeError("a bug in one duty")
            return 0

        return run

    leader = SchedulerLeader(
        lease,
        [
            Duty("fast", 0.01, duty("fast")),
            Duty("slow", 10, duty("slow")),
            Duty("broken", 0.01, duty("broken")),
        ],
        stop,
    )
    thread = threading.Thread(target=leader.run)
    thread.start()
    wait_for(lambda: lease.acquired >= 2)
    assert runs == {"fast": 0, "slow": 0, "broken": 0}  # not leading: nothing runs

    lease.leading.set()
    wait_for(lambda: runs["fast"] >= 5)
    assert runs["slow"] == 1 and runs["broken"] >= 5  # a failing duty never stops the others

    lease.steal.set()  # a transaction finds the lease taken over
    wait_for(lambda: not leader.leading)
    before, renewals = dict(runs), lease.acquired
    wait_for(lambda: lease.acquired >= renewals + 2)
    assert runs == before  # no duty runs after the lease was lost

    lease.leading.set()
    wait_for(lambda: leader.leading)
    stop.set()
    thread.join(5)
    assert not thread.is_alive() and lease.resigned == 1
