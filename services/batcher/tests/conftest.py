"""Real processes for the batcher's integration tests: gunicorn API and the batcher."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from switchyard.config import Settings
from switchyard_devtools.bench.stack import api_server
from switchyard_devtools.testing.worker import WorkerProcess


@pytest.fixture(scope="session")
def api_url(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with api_server(settings, tmp_path_factory.mktemp("batcher-api")) as url:
        yield url


class Batcher(WorkerProcess):
    """A ``switchyard-batcher`` process the test can start, kill and stop."""

    def __init__(self, settings: Settings, workdir: Path, **env: str) -> None:
        super().__init__(
            "switchyard-batcher",
            "logs",
            settings,
            workdir,
            {
                "BATCHER__JSONL_DIR": str(workdir / "sinks"),
                "BATCHER__LOGS__MAX_WAIT_SECONDS": "0.1",
                # One member per group: the embedded broker (tansu) rebalances groups
                # with several members of one process slowly.
                "BATCHER__LOGS__WORKERS": "1",
                "BATCHER__RETRY_CAP_SECONDS": "1",
                **env,
            },
        )


@pytest.fixture
def batcher(settings: Settings, tmp_path: Path) -> Iterator[Batcher]:
    process = Batcher(settings, tmp_path)
    yield process
    process.stop_if_running()


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
