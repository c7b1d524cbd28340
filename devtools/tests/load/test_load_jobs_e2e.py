"""`switchyard load jobs` against the real thing: the API (with its outbox relay) and a
job-worker process on real PostgreSQL and Kafka. Every job it enqueues is finished when
it reports, and the figures it prints are those of these jobs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from switchyard.config import Settings
from switchyard_devtools.bench.stack import api_server, script, service
from switchyard_devtools.load.cli import load
from switchyard_devtools.stack.processes import free_port
from switchyard_devtools.testing.infra import isolated_settings, settings_env

pytestmark = pytest.mark.integration


def test_load_jobs_enqueues_waits_and_reports(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no running dev stack's var/dev/switchyard.toml
    # Its own database and topics: in the shared consumer group, members other tests'
    # job-workers left behind once kept this worker without partitions (tansu) for the
    # whole test, and other tests' jobs would count below.
    settings = isolated_settings(settings, "loadjobs")
    engine = sa.create_engine(settings.sqlalchemy_url)
    port = free_port()
    worker_env = {"ADMIN_PORT": str(port), "JOBS__POOL_SIZE": "8"}
    plot = tmp_path / "run.png"
    with (
        api_server(settings, tmp_path, relay=True) as url,
        service(
            [script("switchyard-job-worker")],
            settings,
            worker_env,
            ready_url=f"http://127.0.0.1:{port}/readyz",
            log=tmp_path / "job-worker.log",
        ),
    ):
        result = CliRunner().invoke(
            load,
            ["jobs", "--count", "60", "--concurrency", "6", "--api", url, "--plot", str(plot)],
            env={**settings_env(settings), "SWITCHYARD_CONFIG": None},
            catch_exceptions=False,
        )
    assert result.exit_code == 0, result.output
    assert re.search(r"finished +60 of 60 \{'succeeded': 60\}", result.output), result.output
    for line in ("enqueue→start  ms", "enqueue→finish ms", "throughput"):
        assert line in result.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with engine.connect() as connection:
        succeeded = connection.execute(
            sa.text("SELECT count(*) FROM jobs WHERE type = 'echo' AND status = 'succeeded'")
        ).scalar_one()
    engine.dispose()
    assert succeeded == 60
