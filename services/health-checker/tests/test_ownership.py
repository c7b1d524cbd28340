"""The checker's bookkeeping in one process against a real PostgreSQL: which targets are
scheduled after reads that race with changes, after leases that may have lapsed, and
what happens to a change of status PostgreSQL failed to record."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from switchyard.config import Settings
from switchyard.kafka.producer import EventProducer
from switchyard.targets import state
from switchyard.targets.records import TargetSpec
from switchyard.targets.store import create_target, delete_target, get_target, update_target
from switchyard_health_checker.ownership import Ownership, as_probe_target
from switchyard_health_checker.scheduler import Scheduler
from switchyard_health_checker.service import Checker
from switchyard_health_checker.targets import ProbeError, ProbeResult, Target

pytestmark = pytest.mark.integration
Run = Callable[[Awaitable[Any]], Any]
HOUR = 3600  # no probe fires during a test


async def never_probed(target: Target) -> ProbeResult:
    raise AssertionError(f"target {target.id} probed during the test")


def spec(name: str, **fields: Any) -> TargetSpec:
    return TargetSpec(name, f"http://127.0.0.1:9/{name}", interval_seconds=HOUR, **fields)


@asynccontextmanager
async def owning(
    settings: Settings, engine: sa.Engine, checker: Checker | None = None
) -> AsyncIterator[tuple[Ownership, Scheduler]]:
    sink = checker.deliver if checker is not None else None

    async def ignore(target: Target, result: ProbeResult) -> None:
        pass

    async with Scheduler(never_probed, sink or ignore) as scheduler:
        replica = checker.replica if checker is not None else "test-replica"
        ownership = Ownership(settings.health_checker, engine, replica, scheduler)
        if checker is not None:
            checker._ownership = ownership
        await ownership.rebalance_once(full=True)
        try:
            yield ownership, scheduler
        finally:
            ownership.leases.release_all()


def test_a_read_older_than_a_change_never_undoes_it(
    isolated: Settings, own_engine: sa.Engine, run: Run
) -> None:
    kept = create_target(own_engine, spec("kept"))
    gone = create_target(own_engine, spec("gone"))

    async def scenario() -> None:
        async with owning(isolated, own_engine) as (ownership, scheduler):
            assert {kept.id, gone.id} <= set(scheduler._entries)
            stale = {kept.id: kept, gone.id: gone}  # what a slow full reload read
            changed = update_target(own_engine, kept.id, {"url": "http://127.0.0.1:9/new"})
            assert changed is not None
            delete_target(own_engine, gone.id)
            await ownership.reload({kept.id, gone.id})  # the notices
            assert ownership.rows[kept.id].url.endswith("/new")
            assert gone.id not in scheduler

            ownership.adopt(stale.values())  # the slow read lands after the notices
            assert ownership.rows[kept.id].version == changed.version
            assert scheduler._entries[kept.id].target.url.endswith("/new")
            assert gone.id not in scheduler and gone.id not in ownership.rows

    run(scenario())


def test_targets_leave_when_leases_may_have_lapsed_and_return_with_a_renewal(
    isolated: Settings, own_engine: sa.Engine, run: Run
) -> None:
    target = create_target(own_engine, spec("t"))

    async def scenario() -> None:
        async with owning(isolated, own_engine) as (ownership, scheduler):
            assert target.id in scheduler
            ownership.valid_until = 0.0  # no renewal for most of a lease (a hung call)
            ownership.expire_if_stale()
            assert target.id not in scheduler and not ownership.rows

            # The shards were still ours: renewed, not gained; their targets come back.
            await ownership.rebalance_once()
            assert len(ownership.leases.owned) == 64
            assert target.id in scheduler and target.id in ownership.rows

    run(scenario())


def test_a_change_postgresql_failed_to_record_is_tried_again(
    isolated: Settings,
    own_engine: sa.Engine,
    producer: EventProducer,
    run: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    row = create_target(own_engine, spec("t", failures_to_down=1))
    checker = Checker(isolated, own_engine, producer)
    recorded = state.record_change
    calls: list[str] = []

    def fails_once(*args: Any) -> Any:
        calls.append(args[1].status)
        if len(calls) == 1:
            raise sa.exc.OperationalError("UPDATE targets", {}, Exception("connection lost"))
        return recorded(*args)

    monkeypatch.setattr(state, "record_change", fails_once)

    def failure(at: datetime) -> ProbeResult:
        return ProbeResult(row.id, at, 1.0, None, ProbeError("connection_refused", "refused"))

    async def scenario() -> None:
        async with owning(isolated, own_engine, checker) as (ownership, _):
            target = as_probe_target(ownership.rows[row.id])
            now = datetime.now(UTC)
            await checker.deliver(target, failure(now))
            assert calls == ["down"]
            assert ownership.states[row.id].status == "unknown", "not recorded: not decided"
            await checker.deliver(target, failure(now + timedelta(seconds=1)))
            assert calls == ["down", "down"]
            assert ownership.states[row.id].status == "down"

    run(scenario())
    stored = get_target(own_engine, row.id)
    assert stored is not None and stored.status == "down" and stored.incident_id is not None
    assert len(checker.outgoing) == 2, "both results are published"
