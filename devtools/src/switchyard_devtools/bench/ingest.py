"""``switchyard bench ingest``: the logs pipeline on this machine, API to row.

Phases, each against its own fresh embedded servers and real processes:

1. a bare Flask endpoint vs single-event ``POST /logs``, same gunicorn settings;
2. ``POST /logs`` with 100 events per request (events/s accepted, acks=all);
3. API memory (RSS of gunicorn master + workers) under a flood, with the bound in force.

The batcher's phases (Kafka -> PostgreSQL) are ``switchyard bench batcher``.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from switchyard.config import Settings
from switchyard_devtools.bench.stack import bench_settings, script, service
from switchyard_devtools.load.cli import requests as load_requests
from switchyard_devtools.load.generator import Request, run_load
from switchyard_devtools.stack.processes import free_port

NAME = "ingest"
SERVICES = [f"bench-{n}" for n in range(24)]
SINGLE = orjson.dumps({"service": "bench-0", "message": "a single event", "level": "info"})


def bare_app() -> Any:
    """The baseline: Flask under the same gunicorn settings, no validation, no Kafka."""
    from flask import Flask, Response, request

    app = Flask("bare")

    @app.post("/logs")
    def logs() -> Response:
        request.get_data()
        return Response(b'{"accepted":1}', status=202, mimetype="application/json")

    @app.get("/readyz")
    def ready() -> Response:
        return Response(b"{}", mimetype="application/json")

    return app


def _metric(url: str, name: str, labels: str = "") -> float:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and labels in line
    )


def _rss_kib(pid: int) -> int:
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    total = 0
    for each in pids:
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def _single(url: str, count: int) -> Iterator[Request]:
    return (Request("POST", f"{url}/logs", SINGLE) for _ in range(count))


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
        bare_argv = [
            script("gunicorn"),
            "-c",
            "python:switchyard_api.gunicorn_conf",
            "switchyard_devtools.bench.ingest:bare_app()",
        ]
        single: dict[str, float] = {}
        for label, argv in (("bare Flask", bare_argv), ("POST /logs", None)):
            context, url = _api(settings, workdir, api_env, argv)
            with context:
                run_load(_single(url, 1_000), 32, show_progress=False)  # warm up
                result = run_load(_single(url, 8_000), 32, show_progress=False)
                single[label] = result.requests / result.elapsed
                if label == "POST /logs":
                    batched = run_load(
                        load_requests("logs", url, 200_000, 100, SERVICES), 16, show_progress=False
                    )
        ratio = single["POST /logs"] / single["bare Flask"]
        table += [
            f"| bare Flask, single POST | {single['bare Flask']:,.0f} req/s | |",
            f"| POST /logs, one event per request | {single['POST /logs']:,.0f} req/s "
            f"({ratio:.0%} of bare) | ≥ 70 % |",
            f"| POST /logs, 100 events per request | "
            f"{batched.events_accepted / batched.elapsed:,.0f} events/s "
            f"(p99 {batched.percentile(99) * 1000:.0f} ms, "
            f"{batched.statuses.get(429, 0)} x 429) | ≥ 50,000 |",
        ]
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
        f"{flood.requests} | ≤ {bound_mib:.0f} MiB (bound: {ingest.max_in_flight_events:,} "
        f"events / {ingest.max_in_flight_bytes / 2**20:.0f} MiB in flight per worker) |"
    )
