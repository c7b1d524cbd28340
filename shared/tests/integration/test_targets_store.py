"""Targets against real PostgreSQL: change notices, apply, shard leases between replicas,
fenced progress, and each change of status announced once."""

from __future__ import annotations

import dataclasses
import random
import select
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from switchyard.config import Settings
from switchyard.db.models.targets import SHARDS
from switchyard.kafka.topics import TARGETS, topic_name
from switchyard.targets import state, store
from switchyard.targets.records import NOTIFY_CHANNEL, Change, Progress, TargetSpec
from switchyard.targets.shards import ShardLeases

pytestmark = pytest.mark.integration


@pytest.fixture
def clean(engine: sa.Engine) -> None:
    """Shards and replicas are global: each test starts with all shards free."""
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM checker_replicas"))
        connection.execute(sa.text("UPDATE checker_shards SET owner = NULL, expires_at = 'epoch'"))


def _name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def _events(engine: sa.Engine, target_id: int) -> list[Any]:
    with engine.connect() as connection:
        return connection.execute(
            sa.text("SELECT headers, payload FROM outbox WHERE key = :k ORDER BY id"),
            {"k": str(target_id)},
        ).all()


def test_writes_notify_and_names_are_unique(engine: sa.Engine) -> None:
    listener = engine.raw_connection()
    listener.detach()  # LISTENing: it must never go back to the pool
    dbapi: Any = listener.dbapi_connection
    dbapi.set_session(autocommit=True)
    dbapi.cursor().execute(f"LISTEN {NOTIFY_CHANNEL}")
    try:
        target = store.create_target(engine, TargetSpec(_name(), "http://127.0.0.1:9/"))
        with pytest.raises(store.TargetExists):
            store.create_target(engine, TargetSpec(target.name, "http://127.0.0.1:9/"))
        changed = store.update_target(engine, target.id, {"interval_seconds": 5})
        assert changed is not None and changed.version == 2 and changed.interval_seconds == 5
        assert store.delete_target(engine, target.id)
        assert not store.delete_target(engine, target.id)
        heard: list[str] = []
        deadline = time.monotonic() + 5
        while len(heard) < 3 and time.monotonic() < deadline:
            if select.select([dbapi], [], [], 0.5)[0]:
                dbapi.poll()
                heard += [n.payload for n in dbapi.notifies]
                dbapi.notifies.clear()
        assert [p for p in heard if p == str(target.id)] == [str(target.id)] * 3
    finally:
        listener.close()


def test_apply_makes_the_targets_match_the_file(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM targets"))
    keep, change, drop = _name(), _name(), _name()
    for name in (keep, change, drop):
        store.create_target(engine, TargetSpec(name, "tcp://127.0.0.1:9"))
    wanted = [
        TargetSpec(keep, "tcp://127.0.0.1:9"),
        TargetSpec(change, "tcp://127.0.0.1:9", interval_seconds=10),
        TargetSpec("new-one", "https://example.org/health", expected_status=204),
    ]
    plan = store.apply(engine, wanted, dry_run=True)
    assert (plan.create, plan.update, plan.delete, plan.unchanged) == (
        ["new-one"],
        [change],
        [drop],
        1,
    )
    assert {t.name for t in store.list_targets(engine, after_id=None, limit=100)} == {
        keep,
        change,
        drop,
    }
    store.apply(engine, wanted, dry_run=False)
    assert {t.spec() for t in store.list_targets(engine, after_id=None, limit=100)} == set(wanted)
    again = store.apply(engine, wanted, dry_run=False)
    assert (again.create, again.update, again.delete, again.unchanged) == ([], [], [], 3)
    with pytest.raises(ValueError, match="twice"):
        store.apply(engine, [wanted[0], wanted[0]], dry_run=True)


def test_history_is_newest_first_with_a_cursor_and_uptime(engine: sa.Engine) -> None:
    target = store.create_target(engine, TargetSpec(_name(), "tcp://127.0.0.1:9"))
    now = datetime.now(UTC)
    with engine.begin() as connection:
        for minutes, status in ((1, "up"), (2, "down"), (3, "up"), (4, "up"), (60 * 30, "down")):
            connection.execute(
                sa.text(
                    "INSERT INTO target_checks (id, target_id, status, checked_at)"
                    " VALUES (:id, :t, :s, :at)"
                ),
                {
                    "id": uuid.uuid4(),
                    "t": target.id,
                    "s": status,
                    "at": now - timedelta(minutes=minutes),
                },
            )
    first = store.history(engine, target.id, before=None, limit=2)
    assert [c.status for c in first] == ["up", "down"]
    rest = store.history(engine, target.id, before=(first[-1].checked_at, first[-1].id), limit=10)
    assert [c.status for c in rest] == ["up", "up", "down"]
    assert store.uptime(engine, [target.id]) == {target.id: 0.75}  # the 30 h old one is out


def test_replicas_share_the_shards_and_take_over_a_dead_ones(
    engine: sa.Engine, clean: None
) -> None:
    a = ShardLeases(engine, "replica-a", 1.0)
    b = ShardLeases(engine, "replica-b", 1.0)
    assert len(a.rebalance().owned) == SHARDS  # alone: everything
    b.rebalance()  # b is live now, but every shard is a's
    surplus = a.rebalance().surplus
    assert len(surplus) == SHARDS // 2
    a.release(surplus)  # after it stopped probing them
    assert len(b.rebalance().owned) == SHARDS // 2
    assert set(a.owned).isdisjoint(b.owned)
    old_tokens = dict(a.owned)
    time.sleep(0.6)  # a dies: it renews no more; b goes on renewing
    b.rebalance()
    time.sleep(0.7)
    taken = b.rebalance()
    assert len(taken.owned) == SHARDS and taken.gained == set(old_tokens)
    assert all(taken.owned[s] > old_tokens[s] for s in old_tokens)
    assert a.rebalance().lost == set(old_tokens)  # a comes back: it learns they are gone


def test_a_change_of_status_is_announced_once_and_fenced(
    engine: sa.Engine, settings: Settings, clean: None
) -> None:
    topic = topic_name(settings, TARGETS)
    target = store.create_target(engine, TargetSpec(_name(), "tcp://127.0.0.1:9"))
    leases = ShardLeases(engine, "replica-a", 30)
    token = leases.rebalance().owned[target.shard]
    now = datetime.now(UTC)
    up = Change(target.id, target.shard, "up", str(uuid.uuid4()), now, None, 2)
    assert state.record_change(engine, up, "replica-a", token, topic) is not None
    assert _events(engine, target.id) == []  # unknown -> up: no incident ends there
    incident = str(uuid.uuid4())
    down = Change(target.id, target.shard, "down", incident, now, "connection_refused", 3)
    results: list[object] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(
                state.record_change(engine, down, "replica-a", token, topic)
            )
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r is not None for r in results) == 1
    assert state.record_change(engine, down, "replica-b", token, topic) is None
    back = Change(target.id, target.shard, "up", str(uuid.uuid4()), now, None, 2)
    assert state.record_change(engine, back, "replica-a", token + 1, topic) is None  # stale
    assert state.record_change(engine, back, "replica-a", token, topic) is not None
    events = _events(engine, target.id)
    assert [e.headers["ce_type"] for e in events] == ["target.down", "target.up"]
    assert all(incident.encode() in bytes(e.payload) for e in events)
    progress = Progress(target.id, target.shard, 0, 5, now, 1.5, None, None)
    assert state.save_progress(engine, [progress], "replica-a", {target.shard: token}) == 1
    assert state.save_progress(engine, [progress], "replica-b", {target.shard: token}) == 0
    assert state.load_ids(engine, [target.id, 10**12]) == {
        target.id: store.get_target(engine, target.id),
        10**12: None,
    }


def test_an_apply_and_the_checkers_progress_writes_do_not_deadlock(
    engine: sa.Engine, clean: None
) -> None:
    # Both write many target rows in one transaction; at 2,000 targets in the dev stack
    # they deadlocked when each locked the rows in its own order (names / unnest order).
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM targets"))
    count = 300
    # Names sort the opposite way to ids, so an apply walking by name meets ids descending.
    specs = [TargetSpec(f"d-{count - n:04d}", "tcp://127.0.0.1:9") for n in range(count)]
    made = [store.create_target(engine, spec) for spec in specs]
    tokens = ShardLeases(engine, "replica-a", 60).rebalance().owned
    errors: list[BaseException] = []

    def progress() -> None:
        try:
            for round_ in range(20):
                now = datetime.now(UTC) + timedelta(seconds=round_)
                items = [Progress(t.id, t.shard, 0, round_, now, 1.0, 200, None) for t in made]
                random.shuffle(items)
                state.save_progress(engine, items, "replica-a", tokens)
        except BaseException as exc:
            errors.append(exc)

    def applies() -> None:
        try:
            for round_ in range(20):
                interval = 10 + round_ % 2
                wanted = [dataclasses.replace(s, interval_seconds=interval) for s in specs]
                store.apply(engine, wanted, dry_run=False)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=progress), threading.Thread(target=applies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM targets"))
