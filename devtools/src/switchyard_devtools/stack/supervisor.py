"""Runs the services like a small orchestrator: ordered start, restarts, ordered stop.

Guarantees:

* A stop signal (SIGINT, SIGTERM, SIGHUP) stops the services in order, however it is
  sent. Copies of one stop request arriving together (a signal to the whole process
  group reaches this process directly and again forwarded by ``uv run`` and ``make``)
  count once; only a signal more than ``REPEAT_AFTER`` seconds after the last one counted,
  as a person pressing Ctrl-C again, hurries the stop (SIGKILL).
* Every service runs in its own session, so a signal to the process group of
  ``make dev`` reaches make, uv and this supervisor only; services stop when the
  supervisor tells them to, in ``stop_rank`` order. The embedded servers are started the
  same way (:func:`switchyard_devtools.stack.processes.spawn`).
* With the embedded in-memory broker, before the services that consume are stopped (and
  so before the broker goes), the supervisor waits until the consumer groups have
  committed everything already published, up to ``drain_timeout`` seconds, printing the
  remaining lag: what was accepted is not lost with the broker.

Everything happens in the main thread around one ``select``: children's output, signals
(through a wakeup pipe) and timers. No threads (and no Kafka client, which starts
threads, in this process: lag is measured by a child), because ``spawn`` forks with a
``preexec_fn``, which is only safe in a single-threaded process.
"""

from __future__ import annotations

import http.client
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import IO

from switchyard_devtools.stack.infra import Server
from switchyard_devtools.stack.lag import Lag
from switchyard_devtools.stack.output import Console, LineBuffer
from switchyard_devtools.stack.processes import spawn
from switchyard_devtools.stack.services import ServiceSpec
from switchyard_devtools.stack.stack import describe_status

RESTART_MIN = 1.0
RESTART_MAX = 30.0
# A service that ran this long before dying is restarted at once again, not after 30 s.
STABLE_AFTER = 60.0
STOP_TIMEOUT = 30.0
PROBE_EVERY = 0.5
PROBE_TIMEOUT = 3.0
WAITING_NOTE_EVERY = 20.0
# A stop signal this soon after the last one counted is a copy of it, not a second request.
REPEAT_AFTER = 1.0
DRAIN_TIMEOUT = 60.0
DRAIN_PROBE_EVERY = 1.0
DRAIN_NOTE_EVERY = 2.0
LAG_PROBE_TIMEOUT = 20.0


class Signals:
    """SIGINT, SIGTERM and SIGHUP become a counter of stop requests; a wakeup pipe
    interrupts ``select``. Signals within ``REPEAT_AFTER`` seconds of the last request
    counted are copies of it (one group signal, forwarded again by uv and make)."""

    def __init__(self, repeat_after: float = REPEAT_AFTER) -> None:
        self.count = 0
        self.copies = 0
        self._repeat_after = repeat_after
        self._last = 0.0
        self.fd, self._write_fd = os.pipe()
        os.set_blocking(self.fd, False)
        os.set_blocking(self._write_fd, False)

    def install(self) -> Signals:
        signal.set_wakeup_fd(self._write_fd)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        # A closed terminal stops the stack in order too, instead of killing it outright.
        signal.signal(signal.SIGHUP, self._on_signal)
        # A handler (not SIG_IGN, which would stop the kernel keeping exit statuses) so a
        # child's death wakes the loop at once instead of at the next tick.
        signal.signal(signal.SIGCHLD, lambda *_: None)
        return self

    def _on_signal(self, signum: int, _: FrameType | None) -> None:
        now = time.monotonic()
        if self.count and now - self._last < self._repeat_after:
            self.copies += 1
            return
        self.count += 1
        self._last = now

    def drain(self) -> None:
        try:
            while os.read(self.fd, 512):
                pass
        except BlockingIOError:
            pass


@dataclass
class _Stream:
    name: str
    pipe: IO[bytes]
    lines: LineBuffer = field(default_factory=LineBuffer)


@dataclass
class Child:
    spec: ServiceSpec
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    delay: float = RESTART_MIN
    restart_at: float | None = None
    ready: bool = False
    next_probe: float = 0.0
    last_probe: str = "not probed yet"


class Supervisor:
    def __init__(
        self,
        specs: Sequence[ServiceSpec],
        console: Console,
        signals: Signals,
        infra: Sequence[Server],
        on_ready: Callable[[], None],
        drain_timeout: float = DRAIN_TIMEOUT,
    ) -> None:
        self.children = [Child(spec) for spec in specs]
        self._console = console
        self._signals = signals
        self._infra = infra
        self._on_ready = on_ready
        self._selector = selectors.DefaultSelector()
        self._selector.register(signals.fd, selectors.EVENT_READ, None)
        self._tiers = sorted({spec.tier for spec in specs})
        self._ready = False
        self._next_note = time.monotonic() + WAITING_NOTE_EVERY
        self._drain_timeout = drain_timeout
        self.failure: str | None = None

    def run(self) -> int:
        """Until a signal or an infrastructure failure; returns the exit status."""
        try:
            self._start_next_tier()
            while not self._signals.count and self.failure is None:
                self._pump(0.25)
                self._reap()
                self._check_infra()
                self._restart_due()
                self._advance_startup()
        finally:
            self._shutdown()
        return 1 if self.failure else 0

    def _start_next_tier(self) -> None:
        if not self._tiers:
            self._ready = True
            self._on_ready()
            return
        tier = self._tiers.pop(0)
        for child in self.children:
            if child.spec.tier == tier:
                self._spawn(child)

    def _spawn(self, child: Child) -> None:
        spec = child.spec
        child.started_at = time.monotonic()
        child.restart_at = None
        try:
            # Its own session: a signal to our process group must not reach it.
            child.process = spawn(spec.argv, env=spec.env, stdout=subprocess.PIPE, new_session=True)
        except OSError as exc:
            # Out of processes or a vanished script: as good as dying at once.
            self._console.warn(f"could not start {spec.name}: {exc}; retrying in {child.delay:g}s")
            child.restart_at = child.started_at + child.delay
            child.delay = min(child.delay * 2, RESTART_MAX)
            return
        assert child.process.stdout is not None
        os.set_blocking(child.process.stdout.fileno(), False)
        self._selector.register(
            child.process.stdout, selectors.EVENT_READ, _Stream(spec.name, child.process.stdout)
        )
        self._console.say(f"started {spec.name} (pid {child.process.pid}, port {spec.port})")

    def _pump(self, timeout: float) -> None:
        for key, _ in self._selector.select(timeout):
            if key.data is None:
                self._signals.drain()
            else:
                self._read(key.data)

    def _read(self, stream: _Stream) -> bool:
        """Print what ``stream`` has; False once it has nothing more for now (or ever)."""
        try:
            data = os.read(stream.pipe.fileno(), 65536)
        except BlockingIOError:
            return False
        for line in stream.lines.feed(data) if data else stream.lines.flush():
            self._console.line(stream.name, line)
        if not data:
            self._selector.unregister(stream.pipe)
            stream.pipe.close()
        return bool(data)

    def _drain(self, child: Child) -> None:
        """Print what a dead child wrote last, before the news of its death."""
        pipe = child.process.stdout if child.process else None
        if pipe is None or pipe.closed:
            return
        stream: _Stream = self._selector.get_key(pipe).data
        while self._read(stream):
            pass

    def _reap(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.process is None or (status := child.process.poll()) is None:
                continue
            self._drain(child)
            uptime = now - child.started_at
            if uptime >= STABLE_AFTER:
                child.delay = RESTART_MIN
            self._console.warn(
                f"{child.spec.name} (pid {child.process.pid}) exited "
                f"({describe_status(status)}) after {uptime:.1f}s; "
                f"restarting in {child.delay:g}s"
            )
            child.process = None
            child.restart_at = now + child.delay
            child.delay = min(child.delay * 2, RESTART_MAX)

    def _restart_due(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.process is None and child.restart_at is not None and now >= child.restart_at:
                self._spawn(child)

    def _check_infra(self) -> None:
        for server in self._infra:
            if not server.alive():
                log = f"; its log: {server.log_path}" if server.log_path else ""
                self.failure = (
                    f"{server.name} (pid {server.process.pid}) exited unexpectedly "
                    f"({describe_status(server.process.returncode)}){log}"
                )
                self._console.warn(
                    f"{self.failure}; the stack cannot run without it: stopping everything"
                )
                return

    def _advance_startup(self) -> None:
        if self._ready:
            return
        now = time.monotonic()
        waiting = [
            c
            for c in self.children
            if c.process is not None and not c.ready and c.spec.tier not in self._tiers
        ]
        for child in waiting:
            if now >= child.next_probe:
                child.next_probe = now + PROBE_EVERY
                child.ready, child.last_probe = _probe(child.spec)
                if child.ready:
                    self._console.say(f"{child.spec.name} is ready")
        started = [c for c in self.children if c.spec.tier not in self._tiers]
        if all(c.ready for c in started):
            self._start_next_tier()
        elif now >= self._next_note:
            self._next_note = now + WAITING_NOTE_EVERY
            for child in (c for c in started if not c.ready):
                self._console.say(f"still waiting for {child.spec.name}: {child.last_probe}")

    def _shutdown(self) -> None:
        calm = self._signals.count

        def hurry() -> bool:
            return self._signals.count > calm

        for child in self.children:
            child.restart_at = None
        if any(child.process is not None for child in self.children):
            self._console.say("stopping the services (a second Ctrl-C kills them)")
        ranks = sorted({c.spec.stop_rank for c in self.children})
        for rank in ranks:
            if rank == ranks[-1]:
                # The API and the relay (producers) are stopped; the workers are not yet.
                self._drain_broker(hurry)
            group = [c for c in self.children if c.spec.stop_rank == rank and c.process is not None]
            if group:
                self._stop_group(group, hurry=hurry)
        self._pump(0)
        for key in list(self._selector.get_map().values()):
            if key.data is not None:
                key.data.pipe.close()
        self._selector.close()

    def _drain_broker(self, hurry: Callable[[], bool]) -> None:
        """Wait until consumers committed what the in-memory broker holds (bounded)."""
        kafka = next((s for s in self._infra if s.name == "kafka"), None)
        running = [c for c in self.children if c.process is not None]
        if (
            kafka is None
            or not kafka.alive()
            or self.failure is not None
            or not running
            or self._drain_timeout <= 0
            or hurry()
        ):
            return
        started = time.monotonic()
        deadline = started + self._drain_timeout
        self._console.say(
            f"letting consumers drain the in-memory broker (up to "
            f"{self._drain_timeout:g}s; a second Ctrl-C skips this)"
        )
        next_note = started  # the first measurement is shown at once
        lag: Lag | None = None
        while True:
            lag = self._measure_lag(kafka.url, hurry) or lag
            now = time.monotonic()
            if lag is not None and lag.caught_up():
                self._console.say(f"consumers caught up in {now - started:.1f}s")
                return
            if hurry():
                self._console.warn(
                    "second signal: not waiting for consumers; "
                    f"unconsumed: {lag.describe() if lag else 'unknown'}"
                )
                return
            if now >= deadline or not kafka.alive():
                remaining = f"{lag.total} records ({lag.describe()})" if lag else "unknown"
                self._console.warn(
                    f"consumers did not catch up within "
                    f"{self._drain_timeout:g}s; lost with the in-memory "
                    f"broker: {remaining}"
                )
                return
            if now >= next_note:
                next_note = now + DRAIN_NOTE_EVERY
                self._console.say(
                    f"consumer lag: {lag.total if lag else '?'} records "
                    f"({lag.describe() if lag else 'not measured yet'})"
                )
            # Keep showing output and restarting a consumer that died meanwhile.
            until = min(deadline, now + DRAIN_PROBE_EVERY)
            while time.monotonic() < until and not hurry():
                self._pump(0.1)
                self._reap()
                self._restart_due()

    def _measure_lag(self, bootstrap: str, hurry: Callable[[], bool]) -> Lag | None:
        """Consumer lag from a child process (no Kafka client threads here); None if the
        probe failed, timed out or was cut short by a second signal."""
        expected = sorted(
            {
                f"{group}={topic}"
                for child in self.children
                if child.process is not None or child.restart_at is not None
                for group, topic in child.spec.consumes
            }
        )
        argv = [sys.executable, "-m", "switchyard_devtools.stack.lag", bootstrap, *expected]
        try:
            probe = spawn(argv, stdout=subprocess.PIPE, new_session=True)
        except OSError as exc:
            self._console.warn(f"could not measure consumer lag: {exc}")
            return None
        assert probe.stdout is not None
        os.set_blocking(probe.stdout.fileno(), False)
        output = b""
        started = time.monotonic()
        try:
            while True:
                try:
                    chunk = os.read(probe.stdout.fileno(), 65536)
                except BlockingIOError:
                    chunk = None
                if chunk:
                    output += chunk
                    continue
                if chunk == b"" or hurry() or time.monotonic() - started > LAG_PROBE_TIMEOUT:
                    break
                self._pump(0.05)
                self._reap()
                self._restart_due()
        finally:
            if probe.poll() is None:
                probe.kill()
            probe.wait()
            probe.stdout.close()
        if probe.returncode != 0:
            return None
        # The probe's stderr (librdkafka's notes) is merged in: find its JSON line.
        lines = [line for line in output.splitlines() if line.startswith(b'{"groups"')]
        try:
            return Lag.from_json(lines[-1])
        except (ValueError, KeyError, IndexError):
            return None

    def _stop_group(self, group: list[Child], hurry: Callable[[], bool]) -> None:
        killed = hurry()
        started = time.monotonic()
        for child in group:
            assert child.process is not None
            how = "SIGKILL" if killed else "SIGTERM"
            self._console.say(f"stopping {child.spec.name} (pid {child.process.pid}, {how})")
            child.process.send_signal(signal.SIGKILL if killed else signal.SIGTERM)
        while group:
            self._pump(0.1)
            for child in list(group):
                assert child.process is not None
                if (status := child.process.poll()) is not None:
                    self._drain(child)
                    self._console.say(
                        f"{child.spec.name} stopped ({describe_status(status)}) "
                        f"in {time.monotonic() - started:.1f}s"
                    )
                    child.process = None
                    group.remove(child)
            overdue = time.monotonic() - started > STOP_TIMEOUT
            if group and not killed and (overdue or hurry()):
                killed = True
                names = ", ".join(c.spec.name for c in group)
                why = f"not stopped after {STOP_TIMEOUT:g}s" if overdue else "second signal"
                self._console.warn(f"{why}: SIGKILL to {names}")
                for child in group:
                    assert child.process is not None
                    child.process.send_signal(signal.SIGKILL)


def _probe(spec: ServiceSpec) -> tuple[bool, str]:
    """GET /readyz without urllib, which would send even 127.0.0.1 to an HTTP proxy."""
    connection = http.client.HTTPConnection("127.0.0.1", spec.port, timeout=PROBE_TIMEOUT)
    try:
        connection.request("GET", "/readyz")
        response = connection.getresponse()
        body = response.read(300).decode(errors="replace")
        return response.status == 200, f"/readyz answered {response.status} {body}"
    except OSError as exc:
        return False, f"/readyz: {exc}"
    finally:
        connection.close()
