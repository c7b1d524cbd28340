"""The relay as a process: wakes on NOTIFY, stays ready, stops on SIGTERM."""

from __future__ import annotations

import json
import signal
import time
import urllib.request

import pytest
import sqlalchemy as sa

from switchyard.config import Settings
from switchyard.events import CloudEvent
from switchyard.kafka.tail import wait_for_records
from switchyard.kafka.topics import USERS, topic_name
from switchyard.outbox import add_event
from switchyard_devtools.bench.stack import script
from switchyard_devtools.stack.processes import free_port, spawn, wait_for_port
from switchyard_devtools.testing.infra import settings_env

pytestmark = pytest.mark.integration


def test_relay_process_publishes_stays_ready_and_stops_cleanly(
    settings: Settings, engine: sa.Engine
) -> None:
    port = free_port()
    env = {**settings_env(settings), "ADMIN_PORT": str(port), "PYTHONUNBUFFERED": "1"}
    relay = spawn([script("switchyard-api"), "relay"], env=env)
    try:
        wait_for_port(port, relay, "relay admin server")
        topic = topic_name(settings, USERS)
        events = [
            CloudEvent(type="user.updated", source="/tests", data={"n": i}) for i in range(20)
        ]
        for event in events:
            with engine.begin() as connection:
                add_event(connection, topic, event, key="relay-process")
            # Readiness checks run on pooled connections while the relay LISTENs.
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
                assert json.loads(r.read())["status"] == "ready"
        ids = {e.id for e in events}
        got = wait_for_records(settings, topic, lambda r: r.event.id in ids, count=len(ids))
        assert {r.event.id for r in got} == ids
    finally:
        started = time.monotonic()
        relay.send_signal(signal.SIGTERM)
        assert relay.wait(30) == 0
    assert time.monotonic() - started < 15
