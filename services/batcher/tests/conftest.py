"""Real processes for the batcher's integration tests: gunicorn API and the batcher."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from switchyard.config import Settings
from switchyard_devtools.bench.stack import script, service
from switchyard_devtools.stack.processes import free_port, spawn, stop_process
from switchyard_devtools.testing.infra import settings_env


@pytest.fixture(scope="session")
def api_url(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    logs = tmp_path_factory.mktemp("batcher-api")
    env = {"API__PORT": str(port), "API__WORKERS": "2", "ADMIN_PORT": str(free_port())}
    with service(
        [script("switchyard-api"), "serve"],
        settings,
        env,
        ready_url=f"http://127.0.0.1:{port}/readyz",
        log=logs / "api.log",
    ):
        yield f"http://127.0.0.1:{port}"


class Batcher:
    """A ``switchyard-batcher`` process the test can start, kill and stop."""

    def __init__(self, settings: Settings, workdir: Path, **env: str) -> None:
        self.settings = settings
        self.workdir = workdir
        self.env = {
            **settings_env(settings),
            "LOG_LEVEL": "info",
            "BATCHER__JSONL_DIR": str(workdir / "sinks"),
            "BATCHER__LOGS__MAX_WAIT_SECONDS": "0.1",
            # One member per group: the embedded broker (tansu) rebalances groups
            # with several members of one process slowly.
            "BATCHER__LOGS__WORKERS": "1",
            "BATCHER__RETRY_CAP_SECONDS": "1",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log(self) -> Path:
        return self.workdir / f"batcher-{self.starts}.log"

    def start(self) -> Batcher:
        self.starts += 1
        self.env["ADMIN_PORT"] = str(free_port())
        with open(self.log, "ab") as out:
            self.process = spawn([script("switchyard-batcher")], env=self.env, stdout=out)
        return self

    def wait_until_assigned(self, partitions: int, timeout: float = 60.0) -> None:
        """Until the logs consumers own ``partitions`` partitions between them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_text() if self.log.exists() else ""
            if _logs_assigned(text) >= partitions:
                return
            assert self.process is not None and self.process.poll() is None, text[-3000:]
            time.sleep(0.2)
        raise TimeoutError("the batcher was not assigned its partitions")

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        return stop_process(self.process, signal.SIGTERM, timeout)


def _logs_assigned(log: str) -> int:
    import orjson

    owned: set[str] = set()
    for line in log.splitlines():
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        partitions = [p for p in entry.get("partitions", []) if ".logs[" in p]
        if entry.get("message") == "partitions assigned":
            owned |= set(partitions)
        elif entry.get("message") == "partitions revoked":
            owned -= set(partitions)
    return len(owned)


@pytest.fixture
def batcher(settings: Settings, tmp_path: Path) -> Iterator[Batcher]:
    process = Batcher(settings, tmp_path)
    yield process
    if process.process is not None and process.process.poll() is None:
        process.stop()


def count_rows(engine: sa.Engine, service_prefix: str) -> tuple[int, int]:
    """(rows, distinct ids) of the logs whose service starts with ``service_prefix``."""
    with engine.connect() as connection:
        total, distinct = connection.execute(
            sa.text("SELECT count(*), count(DISTINCT id) FROM logs WHERE service LIKE :p"),
            {"p": f"{service_prefix}%"},
        ).one()
    return int(total), int(distinct)


def wait_for_rows(
    engine: sa.Engine, service_prefix: str, expected: int, timeout: float = 90.0
) -> int:
    deadline = time.monotonic() + timeout
    rows = 0
    while time.monotonic() < deadline:
        rows, _ = count_rows(engine, service_prefix)
        if rows >= expected:
            return rows
        time.sleep(0.25)
    return rows
