"""One health-checker process against real PostgreSQL, Kafka, the outbox relay and a
local site: a target goes up, down (its server stopped) and up again, each change
announced exactly once with one incident id; every probe's result reaches the ``health``
topic; changes made through the store reach the running checker without a restart."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from switchyard.config import Settings
from switchyard.kafka.topics import HEALTH, TARGETS, topic_name
from switchyard.targets.records import TargetRow, TargetSpec
from switchyard.targets.store import create_target, delete_target, get_target, update_target

from .cluster import Checker, Site, Tail, checks_per_slot, slot_of, wait_for

pytestmark = pytest.mark.integration


def status_is(engine: sa.Engine, target_id: int, status: str) -> Callable[[], TargetRow | None]:
    def check() -> TargetRow | None:
        row = get_target(engine, target_id)
        return row if row is not None and row.status == status else None

    return check


def test_a_stopped_server_is_announced_down_once_and_up_once(
    isolated: Settings,
    own_engine: sa.Engine,
    relay: None,
    checkers: Callable[..., Checker],
    site: Site,
    tails: Callable[[str], Tail],
) -> None:
    health = tails(topic_name(isolated, HEALTH))
    announced = tails(topic_name(isolated, TARGETS))
    checker = checkers().start().wait_running()
    spec = TargetSpec("web", site.url("/web"), interval_seconds=1, timeout_seconds=0.5)
    target = create_target(own_engine, spec)

    wait_for("up", status_is(own_engine, target.id, "up"))
    first = health.of("target.checked", target.id)
    assert first and all(c["status"] == "up" and c["status_code"] == 200 for c in first)
    assert first[0]["url"] == spec.url and first[0]["error"] is None

    site.stop()
    down = wait_for("down", status_is(own_engine, target.id, "down"))
    assert down.last_error is not None and down.last_error.startswith("connection_refused")
    (opened,) = wait_for("target.down", lambda: announced.of("target.down", target.id))
    assert opened["incident_id"] == down.incident_id
    assert opened["error"].startswith("connection_refused")
    failed = [c for c in health.of("target.checked", target.id) if c["status"] == "down"]
    assert failed and all(c["error"].startswith("connection_refused: ") for c in failed)
    assert all(c["status_code"] is None for c in failed)

    site.start()  # the same port again
    wait_for("up again", status_is(own_engine, target.id, "up"))
    (closed,) = wait_for("target.up", lambda: announced.of("target.up", target.id))
    assert closed["incident_id"] == opened["incident_id"]
    assert closed["down_seconds"] > 0

    # A few more probes while up: nothing more is announced.
    seen = len(health.of("target.checked", target.id))
    wait_for("more checks", lambda: len(health.of("target.checked", target.id)) >= seen + 3)
    metrics = checker.metrics()
    assert metrics['health_probes_total{reason="connection_refused",result="down"}'] >= 3
    assert metrics['health_probes_total{reason="ok",result="up"}'] >= 3
    assert metrics["health_targets_scheduled"] == 1
    assert metrics["health_probe_lag_seconds_count"] >= 6
    assert checker.stop() == 0

    # Every probe that reached the site is on the topic, once (by its event id).
    answered = site.hits["/web"]
    wait_for(
        "every answered probe published",
        lambda: (
            len([c for c in health.of("target.checked", target.id) if c["status_code"]]) >= answered
        ),
    )
    checks = health.of("target.checked", target.id)
    assert len([c for c in checks if c["status_code"] == 200]) == answered
    assert len(announced.of("target.down", target.id)) == 1
    assert len(announced.of("target.up", target.id)) == 1
    slots = checks_per_slot(checks, 1, -(2**62), 2**62)[target.id]
    assert max(slots.values()) == 1, "never two probes in one interval"


def test_changes_through_the_store_reach_the_running_checker(
    isolated: Settings,
    own_engine: sa.Engine,
    checkers: Callable[..., Checker],
    site: Site,
    tails: Callable[[str], Tail],
) -> None:
    health = tails(topic_name(isolated, HEALTH))
    checkers().start().wait_running()
    moving = create_target(own_engine, TargetSpec("moving", site.url("/a"), interval_seconds=1))
    doomed = create_target(
        own_engine, TargetSpec("doomed", site.url("/doomed"), interval_seconds=1)
    )
    create_target(own_engine, TargetSpec("witness", site.url("/w"), interval_seconds=1))
    wait_for("probed", lambda: site.hits["/a"] >= 2 and site.hits["/doomed"] >= 2)

    # A new URL: its next probe goes there.
    changed_at = datetime.now(UTC)
    update_target(own_engine, moving.id, {"url": site.url("/b")})
    wait_for("the new URL probed", lambda: site.hits["/b"] >= 1, timeout=10)
    delay = (datetime.now(UTC) - changed_at).total_seconds()
    print(f"new URL probed {delay:.2f}s after the change (interval 1 s)")

    # A new interval: from then on, at most one probe per 3-second slot.
    update_target(own_engine, moving.id, {"interval_seconds": 3})
    changed = datetime.now(UTC).timestamp()
    wait_for(
        "three probes on the new grid",
        lambda: (
            len(
                [
                    c
                    for c in health.of("target.checked", moving.id)
                    if datetime.fromisoformat(c["checked_at"]).timestamp() > changed + 1.5
                ]
            )
            >= 3
        ),
    )
    late = [
        c
        for c in health.of("target.checked", moving.id)
        if datetime.fromisoformat(c["checked_at"]).timestamp() > changed + 1.5
    ]
    assert len({slot_of(c, 3) for c in late}) == len(late), "one probe per 3 s slot"

    # Deleted: probed no more, while the checker goes on probing the others.
    delete_target(own_engine, doomed.id)
    witnessed = site.hits["/w"]
    wait_for("the notice applied", lambda: site.hits["/w"] >= witnessed + 2)
    after_notice = site.hits["/doomed"]
    witnessed = site.hits["/w"]
    wait_for("three more probes of the others", lambda: site.hits["/w"] >= witnessed + 3)
    assert site.hits["/doomed"] == after_notice, "a deleted target is still probed"


def test_sigterm_publishes_the_results_of_probes_in_flight(
    isolated: Settings,
    own_engine: sa.Engine,
    checkers: Callable[..., Checker],
    site: Site,
    tails: Callable[[str], Tail],
) -> None:
    health = tails(topic_name(isolated, HEALTH))
    checker = checkers(HEALTH_CHECKER__SHUTDOWN_GRACE_SECONDS="5").start().wait_running()
    site.delays["/slow"] = 1.5
    spec = TargetSpec("slow", site.url("/slow"), interval_seconds=5, timeout_seconds=4)
    target = create_target(own_engine, spec)
    wait_for("a probe in flight", lambda: site.hits["/slow"] >= 1)
    assert checker.stop() == 0

    # The probe answered during the grace period: its result is published, not lost.
    (check,) = wait_for("its result", lambda: health.of("target.checked", target.id), timeout=20)
    assert check["status"] == "up" and check["latency_ms"] >= 1400
    row = get_target(own_engine, target.id)
    assert row is not None and row.last_checked_at is not None, "its progress is saved"
