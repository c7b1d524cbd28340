"""A worker service as a real process in a test: start, wait for its partitions, kill, stop.

Guarantee: ``wait_until_assigned`` returns only once the worker's own log says its
consumers own the partitions asked for (assigned minus revoked), so a test publishes
to a member that is really there; a worker that died meanwhile fails the wait at once
with the end of its log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import orjson

from switchyard.config import Settings
from switchyard_devtools.bench.stack import script
from switchyard_devtools.stack.processes import free_port, spawn, stop_process
from switchyard_devtools.testing.infra import settings_env


class WorkerProcess:
    """``command`` (a console script of a service) run with the test's settings."""

    def __init__(
        self, command: str, topic: str, settings: Settings, workdir: Path, env: dict[str, str]
    ) -> None:
        self.command = command
        self.topic = topic  # the topic whose partitions `wait_until_assigned` counts
        self.workdir = workdir
        self.env = {**settings_env(settings), "LOG_LEVEL": "info", **env}
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.admin_port = 0

    @property
    def log(self) -> Path:
        """This start's log (each start writes its own file)."""
        return self.workdir / f"{self.command}-{self.starts}.log"

    def logs(self) -> str:
        """Every start's log, in order."""
        paths = (self.workdir / f"{self.command}-{n}.log" for n in range(1, self.starts + 1))
        return "".join(p.read_text(errors="replace") for p in paths if p.exists())

    def start(self) -> WorkerProcess:
        self.starts += 1
        self.admin_port = free_port()
        self.env["ADMIN_PORT"] = str(self.admin_port)
        with open(self.log, "ab") as out:
            self.process = spawn([script(self.command)], env=self.env, stdout=out)
        return self

    def wait_until_assigned(self, partitions: int, timeout: float = 60.0) -> WorkerProcess:
        """Until its consumers own ``partitions`` partitions of ``topic`` between them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_text() if self.log.exists() else ""
            if partitions_owned(text, self.topic) >= partitions:
                return self
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"{self.command} is not running; its log ends:\n{text[-3000:]}")
            time.sleep(0.2)
        raise TimeoutError(f"{self.command} was not assigned {partitions} partitions")

    def metrics(self) -> dict[str, float]:
        """Samples of the admin /metrics page: ``name{labels}`` -> value."""
        url = f"http://127.0.0.1:{self.admin_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        samples: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def peak_rss_mib(self) -> float:
        """The process's peak resident memory so far (Linux), in MiB; 0 if unknown."""
        assert self.process is not None
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return 0.0
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        return stop_process(self.process, signal.SIGTERM, timeout)

    def stop_if_running(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.stop()


def partitions_owned(log: str, topic: str) -> int:
    """Partitions of ``topic`` (any prefix) a worker's JSON log says it owns now."""
    owned: set[str] = set()
    marker = f"{topic}["
    for line in log.splitlines():
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(entry, dict):
            continue
        partitions = [
            p for p in entry.get("partitions", []) if p.startswith(marker) or f".{marker}" in p
        ]
        if entry.get("message") == "partitions assigned":
            owned |= set(partitions)
        elif entry.get("message") == "partitions revoked":
            owned -= set(partitions)
    return len(owned)
