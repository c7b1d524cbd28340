"""``switchyard bench ingest``: the logs pipeline on this machine, API to row.

Phases, each against its own fresh embedded servers and real processes:

1. ``GET /healthz`` and single-event ``POST /logs`` next to the least code keeping each
   contract (:mod:`~switchyard_devtools.bench.ingest_api`), same gunicorn shape and servers;
2. ``POST /logs`` with 100 events per request (events/s accepted, acks=all), likewise;
3. API memory (RSS of gunicorn master + workers) under a flood, with the bound in force.

The batcher's phases (Kafka -> PostgreSQL) are ``switchyard bench batcher``.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from switchyard.config import Settings
from switchyard_devtools.bench.ingest_api import api_phases
from switchyard_devtools.bench.stack import bench_settings, process_tree, script, service
from switchyard_devtools.load.cli import requests as load_requests
from switchyard_devtools.load.generator import run_load
from switchyard_devtools.stack.processes import free_port

NAME = "ingest"
SERVICES = [f"bench-{n}" for n in range(24)]


def _rss_kib(pid: int) -> int:
    total = 0
    for each in process_tree(pid):
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def _api(
    settings: Settings,
    workdir: Path,
    env: dict[str, str] | None = None,
    argv: list[str] | None = None,
) -> tuple[Any, str]:
    port = free_port()
    environment = {"API__PORT": str(port), "SERVICE_NAME": "api", **(env or {})}
    command = argv or [script("switchyard-api"), "serve"]
    return service(
        command,
        settings,
        environment,
        ready_url=f"http://127.0.0.1:{port}/readyz",
        log=workdir / f"api-{port}.log",
    ), f"http://127.0.0.1:{port}"


def run(workdir: Path) -> str:
    lines = ["## Ingest: logs from HTTP to PostgreSQL", ""]
    table = ["| measure | result | target |", "| --- | ---: | --- |"]
    with bench_settings(workdir) as settings:
        api_env = {"BATCHER__JSONL_DIR": str(workdir / "sinks")}
        rows, _, _ = api_phases(settings, workdir, api_env)  # the rest fed the batcher phases
        lines += [*rows, ""]
        table.append(_flood(settings, workdir, api_env))
    lines += table
    lines.append("")
    return "\n".join(lines)


def _flood(settings: Settings, workdir: Path, env: dict[str, str]) -> str:
    context, url = _api(settings, workdir, env)
    with context as pid:
        idle = _rss_kib(pid)
        peak = [idle]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], _rss_kib(pid))
                time.sleep(0.1)

        sampler = threading.Thread(target=sample)
        sampler.start()
        flood = run_load(
            load_requests("logs", url, 400_000, 1_000, SERVICES), 256, show_progress=False
        )
        stop.set()
        sampler.join()
    ingest, api = settings.ingest, settings.api
    bound_mib = (
        api.workers
        * (ingest.max_in_flight_bytes * 2 + api.threads * api.max_body_bytes * 4)
        / 2**20
        + idle / 1024
    )
    return (
        f"| API RSS under a flood (256 clients x 1,000 events) | "
        f"{idle / 1024:.0f} MiB idle, {peak[0] / 1024:.0f} MiB peak, "
        f"{flood.statuses.get(429, 0)} x 429 of "
        f"{flood.requests} | ≤ {bound_mib:.0f} MiB: the README's bound, {api.workers} "
        f"workers x (2 x {ingest.max_in_flight_bytes / 2**20:.0f} MiB in flight + "
        f"{api.threads} threads x 4 x "
        f"{api.max_body_bytes / 2**20:.0f} MiB body limit) + idle; "
        f"{'within' if peak[0] / 1024 <= bound_mib else 'OVER'} |"
    )
