"""Phases 1-2 of ``switchyard bench ingest``: each API path next to its least code, one run.

Two gunicorn servers with the API's settings (2 workers x 16 gthread threads unless
``API__*`` say otherwise) on the same PostgreSQL, Redis and Kafka: ``switchyard-api serve``
and :mod:`~switchyard_devtools.bench.ingest_minimum`. Each pair is measured in alternating
rounds (minimum, ours, ours, minimum, ...) so a change of machine load falls on both, and
printed as a ratio with p50/p95/p99. Next to req/s: the servers' CPU per request (their
processes' CPU time over the requests answered), which the load generator cannot distort,
and the generator's own CPU share, which says whether it was the bottleneck. With ``wrk``
on PATH the frame and single-event pairs are measured again with it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from switchyard.config import Settings
from switchyard_devtools.bench.stack import script, service
from switchyard_devtools.load.cli import requests as load_requests
from switchyard_devtools.load.generator import LoadResult, Request, run_load
from switchyard_devtools.stack.processes import free_port

SERVICES = [f"bench-{n}" for n in range(24)]
SINGLE = orjson.dumps({"service": "bench-0", "message": "a single event", "level": "info"})
ROUNDS = int(os.environ.get("BENCH_INGEST_ROUNDS", "2"))
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class ApiPath:
    """One path of the API and its yardstick: what to send, how much, how hard."""

    label: str
    method: str
    path: str
    body: bytes | None
    count: int
    concurrency: int
    target: str
    events: int = 1

    def requests(self, url: str) -> Iterable[Request]:
        if self.events == 1:
            return (Request(self.method, url + self.path, self.body) for _ in range(self.count))
        return load_requests("logs", url, self.count * self.events, self.events, SERVICES)


PATHS = [
    ApiPath("(a) GET /healthz vs bare Flask GET", "GET", "/healthz", None, 8_000, 50, "≥ 85 %"),
    ApiPath("(b) POST /logs, one event", "POST", "/logs", SINGLE, 6_000, 50, "≥ 90 %"),
    ApiPath(
        "(c) POST /logs, 100 events",
        "POST",
        "/logs",
        None,
        1_000,
        16,
        "≥ 90 %, ≥ 100,000 events/s",
        events=100,
    ),
]


@dataclass
class Measure:
    result: LoadResult
    server_cpu: float  # seconds of CPU the server's processes used
    generator_cpu: float  # seconds of CPU this process (the load generator) used

    def rate(self, events: bool) -> float:
        done = self.result.events_accepted if events else self.result.requests
        return done / self.result.elapsed

    def cpu_us(self) -> float:
        return self.server_cpu / max(1, self.result.requests) * 1e6

    def percentiles(self) -> str:
        return "/".join(f"{self.result.percentile(q) * 1000:.1f}" for q in (50, 95, 99))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its children (gunicorn master and workers)."""
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    total = 0
    for each in pids:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def _measure(path: ApiPath, url: str, pid: int) -> Measure:
    cpu, own = _cpu_seconds(pid), time.process_time()
    result = run_load(path.requests(url), path.concurrency, show_progress=False)
    return Measure(result, _cpu_seconds(pid) - cpu, time.process_time() - own)


def _merge(measures: list[Measure]) -> Measure:
    merged = LoadResult(started=0.0)
    for each in measures:
        merged.finished += each.result.elapsed
        merged.latencies += each.result.latencies
        merged.statuses.update(each.result.statuses)
        merged.events_accepted += each.result.events_accepted
    return Measure(
        merged,
        sum(m.server_cpu for m in measures),
        sum(m.generator_cpu for m in measures),
    )


def _server(settings: Settings, workdir: Path, env: dict[str, str], app: str | None) -> Any:
    port = free_port()
    argv = [script("switchyard-api"), "serve"]
    if app is not None:
        argv = [script("gunicorn"), "-c", "python:switchyard_api.gunicorn_conf", app]
    return service(
        argv,
        settings,
        {"API__PORT": str(port), "SERVICE_NAME": "api", **env},
        ready_url=f"http://127.0.0.1:{port}/readyz",
        log=workdir / f"api-{port}.log",
    ), f"http://127.0.0.1:{port}"


def _wrk(url: str, path: ApiPath, seconds: int = 5) -> tuple[float, str, int]:
    """(req/s, p50/p95/p99 ms, requests not 2xx) as wrk measured them."""
    script_file = Path(f"/tmp/switchyard-bench-wrk-{os.getpid()}.lua")  # noqa: S108
    body = (path.body or b"").decode()
    script_file.write_text(
        f'wrk.method = "{path.method}"\nwrk.body = {orjson.dumps(body).decode()}\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        "done = function(summary, latency, requests)\n"
        "  for _, p in pairs({50, 95, 99}) do\n"
        '    io.write(string.format("p%d %.3f\\n", p, latency:percentile(p) / 1000))\n'
        "  end\nend\n"
    )
    output = subprocess.run(
        [
            *("wrk", "-t1", f"-c{path.concurrency}", f"-d{seconds}s"),
            *("-s", str(script_file), url + path.path),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    script_file.unlink()
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    marks = "/".join(f"{float(v):.1f}" for v in re.findall(r"^p\d+ ([\d.]+)$", output, re.M))
    return rate, marks, total - (int(failed.group(1)) if failed else 0)


def _row(path: ApiPath, minimum: Measure, ours: Measure) -> list[str]:
    events = path.events > 1
    unit = "events/s" if events else "req/s"
    ratio = ours.rate(events) / minimum.rate(events)
    return [
        f"| {path.label} | {minimum.rate(events):,.0f} {unit}, p50/95/99 "
        f"{minimum.percentiles()} ms, {minimum.cpu_us():,.0f} µs CPU/req | "
        f"{ours.rate(events):,.0f} {unit}, p50/95/99 {ours.percentiles()} ms, "
        f"{ours.cpu_us():,.0f} µs CPU/req | **{ratio:.0%}** (CPU/req "
        f"{minimum.cpu_us() / ours.cpu_us():.0%}) | {path.target} |"
    ]


def api_phases(
    settings: Settings, workdir: Path, env: dict[str, str]
) -> tuple[list[str], int, LoadResult]:
    """(table rows, events both servers accepted, our batched result)."""
    minimum_context, minimum_url = _server(
        settings, workdir, env, "switchyard_devtools.bench.ingest_minimum:minimum_app()"
    )
    ours_context, ours_url = _server(settings, workdir, env, None)
    rows: list[str] = []
    accepted = 0
    with minimum_context as minimum_pid, ours_context as ours_pid:
        servers: dict[str, tuple[str, int]] = {
            "minimum": (minimum_url, minimum_pid),
            "ours": (ours_url, ours_pid),
        }
        for url, _ in servers.values():  # warm up: imports, connections, Kafka metadata
            for path in PATHS:
                run_load(path.requests(url), path.concurrency, show_progress=False)
                accepted += path.count * path.events
        generator: list[float] = []
        batched = LoadResult(started=0.0)
        for path in PATHS:
            measures: dict[str, list[Measure]] = {"minimum": [], "ours": []}
            for round_ in range(ROUNDS):
                order = ("minimum", "ours") if round_ % 2 == 0 else ("ours", "minimum")
                for name in order:
                    measure = _measure(path, *servers[name])
                    measures[name].append(measure)
                    accepted += measure.result.events_accepted
                    generator.append(measure.generator_cpu / measure.result.elapsed)
            minimum, ours = _merge(measures["minimum"]), _merge(measures["ours"])
            rows += _row(path, minimum, ours)
            if path.events > 1:
                batched = ours.result
        wrk_rows, wrk_accepted = _wrk_rows(servers)
        accepted += wrk_accepted
    header = [
        "| path (same gunicorn shape, same servers) | least code (yardstick) | ours | "
        "ours / least | target |",
        "| --- | --- | --- | ---: | --- |",
    ]
    note = (
        f"| load generator (switchyard_devtools.load, one asyncio process) | CPU share of "
        f"one core while measuring: {min(generator):.0%} to {max(generator):.0%} | | | "
        "not the bottleneck if well under 100 % |"
    )
    return [*header, *rows, note, *wrk_rows], accepted, batched


def _wrk_rows(servers: dict[str, tuple[str, int]]) -> tuple[list[str], int]:
    if shutil.which("wrk") is None:
        return ["| wrk cross-check | wrk not on PATH: skipped | | | |"], 0
    rows, accepted = [], 0
    for path in PATHS[:2]:
        figures: dict[str, tuple[float, str, int]] = {}
        for name in ("minimum", "ours"):
            figures[name] = _wrk(servers[name][0], path)
            accepted += figures[name][2] if path.method == "POST" else 0
        (low, low_marks, _), (high, high_marks, _) = figures["minimum"], figures["ours"]
        rows.append(
            f"| {path.label}, wrk -t1 -c{path.concurrency} 5 s | {low:,.0f} req/s, p50/95/99 "
            f"{low_marks} ms | {high:,.0f} req/s, p50/95/99 {high_marks} ms | "
            f"**{high / low:.0%}** | |"
        )
    return rows, accepted
