"""``switchyard bench ingest``: the logs pipeline on this machine, API to row.

Phases, each against its own fresh embedded servers and real processes:

1. ``GET /healthz`` and single-event ``POST /logs`` next to the least code keeping each
   contract (:mod:`~switchyard_devtools.bench.ingest_api`), same gunicorn shape and servers;
2. ``POST /logs`` with 100 events per request (events/s accepted, acks=all), likewise;
3. the batcher draining what phases 1-2 left in Kafka, vs a raw COPY of the same rows;
4. end-to-end latency (received at the API -> committed row) at half the peak rate;
5. API memory (RSS of gunicorn master + workers) under a flood, with the bound in force;
6. pytest-benchmark micro-benchmarks of the batcher's components.
"""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from switchyard.config import Settings
from switchyard.sinks.postgres import column_list
from switchyard_devtools.bench.ingest_api import api_phases
from switchyard_devtools.bench.stack import bench_settings, script, service, wait_until_ok
from switchyard_devtools.load.cli import requests as load_requests
from switchyard_devtools.load.generator import Request, run_load
from switchyard_devtools.stack.processes import free_port

NAME = "ingest"
SERVICES = [f"bench-{n}" for n in range(24)]


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


def _paced(requests: Iterator[Request], per_second: float) -> Iterator[Request]:
    started = time.perf_counter()
    for index, request in enumerate(requests):
        delay = started + index / per_second - time.perf_counter()
        if delay > 0:
            time.sleep(delay)  # blocks the load loop briefly; server timestamps measure
        yield request


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


def _drain(
    settings: Settings, workdir: Path, expected: int, env: dict[str, str]
) -> tuple[float, float, Any]:
    """Start the batcher; (rows/s while writing, seconds to the first row, metrics url)."""
    admin = free_port()
    metrics_url = f"http://127.0.0.1:{admin}/metrics"
    context = service(
        [script("switchyard-batcher")],
        settings,
        {"ADMIN_PORT": str(admin), **env},
        log=workdir / "batcher.log",
    )
    context.__enter__()
    wait_until_ok(f"http://127.0.0.1:{admin}/healthz")
    started = time.monotonic()
    first: tuple[float, float] | None = None
    rows = 0.0
    while rows < expected and time.monotonic() - started < 600:
        rows = _metric(metrics_url, "batch_size_sum", "logs")
        if rows and first is None:
            first = (time.monotonic(), rows)
        time.sleep(0.05)
    assert first is not None, "the batcher stored nothing"
    rate = (rows - first[1]) / max(1e-9, time.monotonic() - first[0])
    return rate, first[0] - started, (context, metrics_url)


def _raw_copy(engine: sa.Engine, chunk: int) -> tuple[float, float]:
    """rows/s of the stored rows COPYed again into an identical table: (one COPY, chunked)."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        buffer = io.BytesIO()
        cursor.copy_expert(f"COPY logs ({column_list('log')}) TO STDOUT", buffer)
        lines = buffer.getvalue().splitlines(keepends=True)
        rates = []
        for size in (len(lines), chunk):
            cursor.execute(
                "DROP TABLE IF EXISTS logs_raw; CREATE TABLE logs_raw (LIKE logs INCLUDING ALL)"
            )
            raw.commit()
            started = time.perf_counter()
            for start in range(0, len(lines), size):
                cursor.copy_expert(
                    f"COPY logs_raw ({column_list('log')}) FROM STDIN",
                    io.BytesIO(b"".join(lines[start : start + size])),
                    size=1 << 20,
                )
                raw.commit()
            rates.append(len(lines) / (time.perf_counter() - started))
        cursor.execute("DROP TABLE logs_raw")
        raw.commit()
        return rates[0], rates[1]
    finally:
        raw.close()


def _latency_buckets(before: dict[str, float], after: dict[str, float]) -> Callable[[float], str]:
    total = after["+Inf"] - before["+Inf"]

    def bound(q: float) -> str:
        for le in sorted((k for k in after if k != "+Inf"), key=float):
            if after[le] - before.get(le, 0) >= q / 100 * total:
                return f"≤ {float(le) * 1000:g} ms"
        return "> 30 s"

    return bound


def _buckets(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
        text = response.read().decode()
    buckets = {}
    for line in text.splitlines():
        if line.startswith("end_to_end_latency_seconds_bucket") and "logs" in line:
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[le] = float(line.rsplit(" ", 1)[1])
    return buckets


def _percentiles(engine: sa.Engine, prefix: str) -> list[float]:
    with engine.connect() as connection:
        row = connection.execute(
            sa.text(
                "SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY "
                "extract(epoch FROM stored_at - received_at)) FROM logs WHERE service LIKE :p"
            ),
            {"p": f"{prefix}%"},
        ).scalar_one()
    return [float(v) * 1000 for v in row]


def _components(workdir: Path) -> list[str]:
    out = workdir / "components.json"
    tests = Path(__file__).resolve().parents[4] / "services" / "batcher" / "tests"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(tests / "bench_components.py"),
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "python_files=bench_*.py",
            "--benchmark-only",
            f"--benchmark-json={out}",
        ],
        check=True,
        capture_output=True,
    )
    rows = []
    for bench in orjson.loads(out.read_bytes())["benchmarks"]:
        per = bench["extra_info"].get("records", 1)
        rows.append(
            f"| {bench['name']} | {bench['stats']['median'] * 1e6 / per:.2f} µs | "
            f"{per / bench['stats']['median']:,.0f} |"
        )
    return [
        "| component (pytest-benchmark) | median per record | records/s |",
        "| --- | ---: | ---: |",
        *rows,
    ]


def run(workdir: Path) -> str:
    lines = ["## Ingest: logs from HTTP to PostgreSQL", ""]
    table = ["| measure | result | target |", "| --- | ---: | --- |"]
    with bench_settings(workdir) as settings:
        api_env = {"BATCHER__JSONL_DIR": str(workdir / "sinks")}
        engine = sa.create_engine(settings.sqlalchemy_url, poolclass=sa.pool.NullPool)
        rows, accepted, batched = api_phases(settings, workdir, api_env)
        lines += [*rows, ""]
        rate, join, (batcher, metrics_url) = _drain(settings, workdir, accepted, api_env)
        try:
            with engine.connect() as connection:
                stored = connection.execute(sa.text("SELECT count(*) FROM logs")).scalar_one()
            one_copy, chunked = _raw_copy(engine, settings.batcher.logs.max_size)
            table += [
                f"| batcher, draining {accepted:,} events from Kafka | {rate:,.0f} rows/s "
                f"({stored:,} rows, first row after {join:.1f} s) | |",
                f"| raw COPY of the same rows, one statement | {one_copy:,.0f} rows/s "
                f"(batcher {rate / one_copy:.0%}) | batcher ≥ 80 % |",
                f"| raw COPY, {settings.batcher.logs.max_size} rows per transaction "
                f"| {chunked:,.0f} rows/s (batcher {rate / chunked:.0%}) | |",
            ]
            peak = min(batched.events_accepted / batched.elapsed, rate)
            context, url = _api(settings, workdir, api_env)
            with context:
                before = _buckets(metrics_url)
                paced = _paced(
                    load_requests(
                        "logs", url, int(peak / 2 * 15), 100, [f"e2e-{n}" for n in range(24)]
                    ),
                    peak / 200,
                )
                run_load(paced, 64, show_progress=False)
                time.sleep(3)
                bound = _latency_buckets(before, _buckets(metrics_url))
                p50, p95, p99 = _percentiles(engine, "e2e-")
                table.append(
                    f"| end to end at {peak / 2:,.0f} events/s (half of {peak:,.0f}) | p50 "
                    f"{p50:.0f} ms, p95 {p95:.0f} ms, p99 {p99:.0f} ms (after commit: p99 "
                    f"{bound(99)}) | p99 ≤ 1 s |"
                )
        finally:
            batcher.__exit__(None, None, None)
        table.append(_flood(settings, workdir, api_env))
        engine.dispose()
    lines += table
    lines += ["", *_components(workdir), ""]
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
