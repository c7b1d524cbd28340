"""Two health-checker processes sharing forty targets (interval 1 s) through shard leases:
each target probed once per interval and never twice, the shards split between them;
a replica killed with SIGKILL has its targets taken over once its leases expire, and an
incident it already announced is not announced again; SIGTERM exits 0 and hands the
shards back at once."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa

from switchyard.config import Settings
from switchyard.kafka.topics import HEALTH, TARGETS, topic_name
from switchyard.targets.records import TargetRow, TargetSpec
from switchyard.targets.store import create_target, get_target

from .cluster import Checker, Site, Tail, checks_per_slot, shards_by_owner, wait_for

pytestmark = pytest.mark.integration
TARGET_COUNT = 40
LEASE_SECONDS = 2.0
LONG_LEASE = 30.0


def forty_targets(engine: sa.Engine, site: Site) -> list[TargetRow]:
    """Forty targets at 1 s; ``/t/0`` answers 503 from the start (it goes down)."""
    site.failing.add("/t/0")
    return [
        create_target(
            engine,
            TargetSpec(
                f"t{n}",
                site.url(f"/t/{n}"),
                interval_seconds=1,
                timeout_seconds=0.5,
                failures_to_down=2,
                successes_to_up=2,
            ),
        )
        for n in range(TARGET_COUNT)
    ]


def pair(
    checkers: Callable[..., Checker], engine: sa.Engine, **env: str
) -> tuple[Checker, Checker]:
    """Two running checkers holding 32 shards each."""
    a = checkers("a", **env).start()
    b = checkers("b", **env).start()
    a.wait_running()
    b.wait_running()
    wait_for(
        "shards split 32/32", lambda: shards_by_owner(engine) == {a.replica: 32, b.replica: 32}
    )
    return a, b


def checked_after(tail: Tail, target_id: int, moment: float) -> list[dict[str, Any]]:
    return [
        c
        for c in tail.of("target.checked", target_id)
        if datetime.fromisoformat(c["checked_at"]).timestamp() > moment
    ]


def slot_now() -> int:
    return int(time.time())


def test_two_replicas_probe_each_target_once_per_interval_and_survive_a_sigkill(
    isolated: Settings,
    own_engine: sa.Engine,
    relay: None,
    checkers: Callable[..., Checker],
    site: Site,
    tails: Callable[[str], Tail],
) -> None:
    health = tails(topic_name(isolated, HEALTH))
    announced = tails(topic_name(isolated, TARGETS))
    targets = forty_targets(own_engine, site)
    failing = targets[0]
    a, b = pair(checkers, own_engine)
    scheduled = {c.replica: c.metrics()["health_targets_scheduled"] for c in (a, b)}
    assert sum(scheduled.values()) == TARGET_COUNT and min(scheduled.values()) > 0, scheduled

    (opened,) = wait_for("target.down", lambda: announced.of("target.down", failing.id))

    # Ten whole intervals while both run: every target once in each, never twice.
    first = slot_now() + 1
    last = first + 9
    wait_for("ten intervals", lambda: slot_now() > last + 2, timeout=30)
    counts = checks_per_slot(health.of("target.checked"), 1, first, last)
    doubled = {t: {s: n for s, n in c.items() if n > 1} for t, c in counts.items()}
    assert not any(doubled.values()), f"probed twice in one interval: {doubled}"
    covered = sum(len(c) for c in counts.values())
    print(f"two replicas: {covered} of {TARGET_COUNT * 10} (target, interval) pairs probed")
    assert set(counts) == {t.id for t in targets}
    assert covered >= TARGET_COUNT * 10 * 0.9, "most intervals are probed"

    # SIGKILL the replica holding the failing target: the other takes over its shards.
    with own_engine.connect() as connection:
        holder = connection.execute(
            sa.text("SELECT owner FROM checker_shards WHERE shard = :s"), {"s": failing.shard}
        ).scalar_one()
    victim, survivor = (a, b) if holder == a.replica else (b, a)
    victim_shards = set(_shards_of(own_engine, victim.replica))
    orphaned = [t for t in targets if t.shard in victim_shards]
    killed_at = time.time()
    victim.kill()

    def taken_over() -> bool:
        return all(checked_after(health, t.id, killed_at) for t in orphaned)

    wait_for("the orphaned targets probed again", taken_over, timeout=30)
    resumed = max(
        datetime.fromisoformat(checked_after(health, t.id, killed_at)[0]["checked_at"]).timestamp()
        for t in orphaned
    )
    print(
        f"SIGKILL: {len(orphaned)} targets resumed within {resumed - killed_at:.2f}s"
        f" (lease {LEASE_SECONDS:g}s)"
    )
    wait_for("all shards held", lambda: shards_by_owner(own_engine) == {survivor.replica: 64})

    # The incident announced by the dead replica is not announced again...
    wait_for("failing probed again", lambda: len(checked_after(health, failing.id, killed_at)) >= 3)
    row = get_target(own_engine, failing.id)
    assert row is not None and (row.status, row.incident_id) == ("down", opened["incident_id"])
    assert len(announced.of("target.down", failing.id)) == 1
    # ...and it ends with the same incident id.
    site.failing.clear()
    (closed,) = wait_for("target.up", lambda: announced.of("target.up", failing.id))
    assert closed["incident_id"] == opened["incident_id"]

    # After the takeover: still never twice in one interval.
    first = slot_now() + 1
    last = first + 4
    wait_for("five intervals", lambda: slot_now() > last + 2, timeout=20)
    counts = checks_per_slot(health.of("target.checked"), 1, first, last)
    assert all(n == 1 for c in counts.values() for n in c.values())
    assert len(counts) == TARGET_COUNT
    assert len(announced.of("target.down", failing.id)) == 1
    assert len(announced.of("target.up", failing.id)) == 1


def _shards_of(engine: sa.Engine, replica: str) -> list[int]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                sa.text("SELECT shard FROM checker_shards WHERE owner = :r"), {"r": replica}
            ).scalars()
        )


def test_sigterm_exits_0_and_hands_the_shards_back_at_once(
    isolated: Settings,
    own_engine: sa.Engine,
    checkers: Callable[..., Checker],
    site: Site,
    tails: Callable[[str], Tail],
) -> None:
    health = tails(topic_name(isolated, HEALTH))
    targets = forty_targets(own_engine, site)
    # Leases far longer than the waits below: only a release can hand the shards over.
    a, b = pair(checkers, own_engine, HEALTH_CHECKER__LEASE_SECONDS=str(LONG_LEASE))
    leaving = b.replica

    assert b.stop() == 0
    stopped_at = time.time()
    assert leaving not in _owners(own_engine), "released, not left to expire"
    assert "shards released" in b.log.read_text()
    wait_for(
        "the other replica holds all",
        lambda: shards_by_owner(own_engine) == {a.replica: 64},
        timeout=LONG_LEASE / 3,
    )
    taken = time.time() - stopped_at
    print(f"SIGTERM: all 64 shards held by the other replica {taken:.2f}s after the exit")

    def all_probed() -> bool:
        return all(
            [
                c
                for c in health.of("target.checked", t.id)
                if datetime.fromisoformat(c["checked_at"]).timestamp() > stopped_at
            ]
            for t in targets
        )

    wait_for("every target probed after the handover", all_probed, timeout=20)


def _owners(engine: sa.Engine) -> set[str]:
    with engine.connect() as connection:
        return set(
            connection.execute(
                sa.text("SELECT DISTINCT owner FROM checker_shards WHERE owner IS NOT NULL")
            ).scalars()
        )
