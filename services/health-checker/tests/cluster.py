"""Real pieces for the checker's integration tests: local sites, checker processes, the
outbox relay, and a tail that keeps every record of a topic as it arrives.

Nothing here is a fake: sites are HTTP servers on loopback, checkers and the relay are
the installed console scripts run as processes, and topics are read from Kafka.
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from switchyard.config import Settings
from switchyard.kafka.client_config import common_config
from switchyard.kafka.consumer import decode
from switchyard_devtools.testing.worker import WorkerProcess
from switchyard_health_checker.scheduler import phase_of


# -- sites -----------------------------------------------------------------------------
class Site:
    """An HTTP server on loopback: every path answers 200, except those in ``failing``
    (503), after ``delays[path]`` seconds if set. ``stop`` closes its port (connections
    are refused); ``start`` opens the same port again."""

    def __init__(self) -> None:
        self.port = 0
        self.failing: set[str] = set()
        self.delays: dict[str, float] = {}
        self.hits: Counter[str] = Counter()
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> Site:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with site._lock:
                    site.hits[self.path] += 1
                time.sleep(site.delays.get(self.path, 0))
                code = 503 if self.path in site.failing else 200
                body = b"unavailable" if code == 503 else b"ok"
                with contextlib.suppress(OSError):  # a checker killed mid-probe hung up
                    self.send_response(code)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


# -- topics ----------------------------------------------------------------------------
class Tail:
    """Every record of ``topic`` from its beginning, collected by a thread until closed:
    a busy topic never falls silent, so reading "until idle" would never end."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.topic = topic
        self.events: list[tuple[str, dict[str, Any]]] = []  # (type, data), in arrival order
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._consumer = Consumer(
            {
                **common_config(settings, "test-tail"),
                "group.id": "test-tail",  # never committed
                "enable.auto.commit": False,
            }
        )
        self._thread = threading.Thread(target=self._run, name=f"tail-{topic}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        metadata = self._consumer.list_topics(self.topic, timeout=10)
        partitions = metadata.topics[self.topic].partitions
        self._consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
        while not self._stop.is_set():
            message = self._consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    raise RuntimeError(error.str())
                continue
            event = decode(message).event
            with self._lock:
                self.events.append((event.type, dict(event.data)))
        self._consumer.close()

    def of(self, event_type: str, target_id: int | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                data
                for kind, data in self.events
                if kind == event_type and (target_id is None or data["target_id"] == target_id)
            ]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def wait_for(what: str, condition: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Until ``condition()`` is truthy; its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s")
        time.sleep(0.1)


def slot_of(check: dict[str, Any], interval: float) -> int:
    """The scheduled slot a check belongs to: its target's grid is ``(k + phase) *
    interval`` of wall-clock time and a probe starts at or after its slot."""
    at = datetime.fromisoformat(check["checked_at"]).timestamp()
    return math.floor(at / interval - phase_of(check["target_id"]))


def checks_per_slot(
    checks: list[dict[str, Any]], interval: float, first: int, last: int
) -> dict[int, Counter[int]]:
    """target id -> slot -> checks, for slots ``first`` to ``last`` (inclusive, taken
    from the wall-clock time / interval)."""
    counts: dict[int, Counter[int]] = defaultdict(Counter)
    for check in checks:
        slot = slot_of(check, interval)
        if first <= slot <= last:
            counts[check["target_id"]][slot] += 1
    return counts


# -- processes -------------------------------------------------------------------------
class Checker(WorkerProcess):
    """A ``switchyard-health-checker`` process with short leases."""

    def __init__(self, settings: Settings, workdir: Path, name: str, **env: str) -> None:
        workdir = workdir / name
        workdir.mkdir(parents=True, exist_ok=True)
        quick = {
            "HEALTH_CHECKER__LEASE_SECONDS": "2",
            "HEALTH_CHECKER__REBALANCE_SECONDS": "0.5",
            "HEALTH_CHECKER__FLUSH_SECONDS": "0.5",
            "KAFKA__SESSION_TIMEOUT_MS": "6000",
        }
        super().__init__("switchyard-health-checker", "health", settings, workdir, {**quick, **env})

    @property
    def replica(self) -> str:
        """Its replica name, from the log line it writes once running."""
        found = re.search(r'"replica": ?"([^"]+)"', self.log.read_text())
        assert found, self.log.read_text()[-3000:]
        return found.group(1)

    def wait_running(self, timeout: float = 90.0) -> Checker:
        def running() -> bool:
            assert self.process is not None and self.process.poll() is None, self.logs()[-3000:]
            return self.log.exists() and "health-checker running" in self.log.read_text()

        wait_for(f"{self.command} running", running, timeout)
        return self


def shards_by_owner(engine: sa.Engine) -> dict[str, int]:
    """Unexpired shard leases per replica."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT owner, count(*) FROM checker_shards"
                " WHERE owner IS NOT NULL AND expires_at > now() GROUP BY owner"
            )
        ).all()
    return {owner: int(count) for owner, count in rows}
