"""Phases 1-2 of ``switchyard bench ingest``: each API path next to its least code, one run.

Two gunicorn servers with the API's settings (2 workers x 16 gthread threads unless
``API__*`` say otherwise) on the same PostgreSQL, Redis and Kafka: ``switchyard-api serve``
and :mod:`~switchyard_devtools.bench.ingest_minimum`. Each pair is measured in alternating
rounds (minimum, ours, ours, minimum, ...) so a change of machine load falls on both, and
printed as a ratio with p50/p95/p99 (averaged over the rounds). Next to req/s: the
servers' CPU per request (their processes' CPU time over the requests answered), which a
slow load generator cannot distort. Two load generators: the project's own
(:mod:`switchyard_devtools.load`, one asyncio process, whose CPU share is printed) and,
when it is on PATH, ``wrk`` (C, far cheaper per request), which is then the one the
targets are read from: on two loaded cores the asyncio generator caps the cheapest paths.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from switchyard.config import Settings
from switchyard_devtools.bench.stack import process_tree, script, service
from switchyard_devtools.load.cli import requests as load_requests
from switchyard_devtools.load.generator import LoadResult, Request, run_load
from switchyard_devtools.stack.processes import free_port

SERVICES = [f"bench-{n}" for n in range(24)]
SINGLE = orjson.dumps({"service": "bench-0", "message": "a single event", "level": "info"})
ROUNDS = int(os.environ.get("BENCH_INGEST_ROUNDS", "2"))
TICKS = os.sysconf("SC_CLK_TCK")
# BENCH_INGEST_FLAME=bench: py-spy flame graphs of our API's workers under each path's load.
FLAMES = os.environ.get("BENCH_INGEST_FLAME", "")
FLAME_NAMES = ("healthz", "logs-single", "logs-batch")
WRK_SECONDS = int(os.environ.get("BENCH_INGEST_WRK_SECONDS", "5"))


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
class Figures:
    """One path on one server, over every round."""

    requests: int = 0
    events: int = 0  # accepted
    seconds: float = 0.0
    server_cpu: float = 0.0  # seconds of CPU the server's processes used
    client_cpu: float = 0.0  # seconds of CPU the load generator used (our generator only)
    marks: list[tuple[float, float, float]] = field(default_factory=list)  # p50/95/99 ms

    def add(self, other: Figures) -> None:
        self.requests += other.requests
        self.events += other.events
        self.seconds += other.seconds
        self.server_cpu += other.server_cpu
        self.client_cpu += other.client_cpu
        self.marks += other.marks

    def rate(self, events: bool) -> float:
        return (self.events if events else self.requests) / max(1e-9, self.seconds)

    def cpu_us(self) -> float:
        return self.server_cpu / max(1, self.requests) * 1e6

    def percentiles(self) -> str:
        return "/".join(f"{sum(m[i] for m in self.marks) / len(self.marks):.1f}" for i in range(3))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its children (gunicorn master and workers)."""
    total = 0
    for each in process_tree(pid):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def _generator(path: ApiPath, url: str, pid: int) -> Figures:
    cpu, own = _cpu_seconds(pid), time.process_time()
    result = run_load(path.requests(url), path.concurrency, show_progress=False)
    return Figures(
        result.requests,
        result.events_accepted,
        result.elapsed,
        _cpu_seconds(pid) - cpu,
        time.process_time() - own,
        [(result.percentile(50) * 1e3, result.percentile(95) * 1e3, result.percentile(99) * 1e3)],
    )


def _wrk(path: ApiPath, url: str, pid: int) -> Figures:
    body = path.body if path.events == 1 else next(iter(path.requests(url))).body
    script_file = Path(f"/tmp/switchyard-bench-wrk-{os.getpid()}.lua")  # noqa: S108
    script_file.write_text(
        f'wrk.method = "{path.method}"\n'
        f"wrk.body = {orjson.dumps((body or b'').decode()).decode()}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        "done = function(summary, latency, requests)\n"
        "  for _, p in pairs({50, 95, 99}) do\n"
        '    io.write(string.format("p%d %.3f\\n", p, latency:percentile(p) / 1000))\n'
        "  end\nend\n"
    )
    cpu = _cpu_seconds(pid)
    output = subprocess.run(
        [
            *("wrk", "-t1", f"-c{path.concurrency}", f"-d{WRK_SECONDS}s"),
            *("-s", str(script_file), url + path.path),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    server_cpu = _cpu_seconds(pid) - cpu
    script_file.unlink()
    total = int(_find(r"(\d+) requests in", output))
    seconds = float(_find(r"requests in ([\d.]+)s", output))
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    done = total - (int(failed.group(1)) if failed else 0)
    p50, p95, p99 = (float(v) for v in re.findall(r"^p\d+ ([\d.]+)$", output, re.M))
    return Figures(total, done * path.events, seconds, server_cpu, 0.0, [(p50, p95, p99)])


def _flame(path: ApiPath, url: str, pid: int, svg: Path) -> int:
    """Record our workers (``--gil``: where the Python time goes) while the path is
    loaded; returns the events accepted meanwhile."""
    svg.parent.mkdir(parents=True, exist_ok=True)
    recorder = subprocess.Popen(
        [
            *(script("py-spy"), "record", "--subprocesses", "--gil", "--rate", "200"),
            *("--duration", "10", "--nonblocking", "-o", str(svg), "--pid", str(pid)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    accepted = 0
    while recorder.poll() is None:  # under load from the recording's start to its end
        accepted += run_load(
            path.requests(url), path.concurrency, show_progress=False
        ).events_accepted
    return accepted


def _find(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    if found is None:
        raise RuntimeError(f"wrk printed no {pattern!r}: {text}")
    return found.group(1)


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


def _row(driver: str, path: ApiPath, minimum: Figures, ours: Figures) -> str:
    events = path.events > 1
    unit = "events/s" if events else "req/s"
    ratio = ours.rate(events) / minimum.rate(events)
    return (
        f"| {path.label}, {driver} | {minimum.rate(events):,.0f} {unit}, p50/95/99 "
        f"{minimum.percentiles()} ms, {minimum.cpu_us():,.0f} µs CPU/req | "
        f"{ours.rate(events):,.0f} {unit}, p50/95/99 {ours.percentiles()} ms, "
        f"{ours.cpu_us():,.0f} µs CPU/req | **{ratio:.0%}** (CPU/req "
        f"{minimum.cpu_us() / ours.cpu_us():.0%}) | {path.target} |"
    )


def api_phases(
    settings: Settings, workdir: Path, env: dict[str, str]
) -> tuple[list[str], int, LoadResult]:
    """(table rows, events both servers accepted, our last batched run's result)."""
    minimum_context, minimum_url = _server(
        settings, workdir, env, "switchyard_devtools.bench.ingest_minimum:minimum_app()"
    )
    ours_context, ours_url = _server(settings, workdir, env, None)
    drivers: dict[str, Callable[[ApiPath, str, int], Figures]] = {}
    if shutil.which("wrk") is not None:
        drivers[f"wrk -t1, {WRK_SECONDS} s"] = _wrk
    drivers["switchyard_devtools.load"] = _generator
    rows: list[str] = []
    accepted = 0
    generator = Figures()
    with minimum_context as minimum_pid, ours_context as ours_pid:
        servers = {"minimum": (minimum_url, minimum_pid), "ours": (ours_url, ours_pid)}
        for url, _ in servers.values():  # warm up: imports, connections, Kafka metadata
            for path in PATHS:
                accepted += run_load(
                    path.requests(url), path.concurrency, show_progress=False
                ).events_accepted
        for driver, measure in drivers.items():
            for path in PATHS:
                figures = {"minimum": Figures(), "ours": Figures()}
                for round_ in range(ROUNDS):
                    for name in ("minimum", "ours") if round_ % 2 == 0 else ("ours", "minimum"):
                        one = measure(path, *servers[name])
                        figures[name].add(one)
                        accepted += one.events
                        if measure is _generator:
                            generator.add(one)
                rows.append(_row(driver, path, figures["minimum"], figures["ours"]))
        if FLAMES:
            for index, path in enumerate(PATHS):
                _flame(
                    path, ours_url, ours_pid, Path(FLAMES) / f"api-flame-{FLAME_NAMES[index]}.svg"
                )
        # The batcher's latency phase paces itself at half of this rate.
        batched = run_load(PATHS[2].requests(ours_url), PATHS[2].concurrency, show_progress=False)
        accepted += batched.events_accepted
    header = [
        "| path (same gunicorn shape, same servers) | least code (yardstick) | ours | "
        "ours / least (CPU/req) | target |",
        "| --- | --- | --- | ---: | --- |",
    ]
    note = (
        "| the asyncio load generator's own CPU while it measured | "
        f"{generator.client_cpu / generator.seconds:.0%} of one core on average | | | "
        "a cap on what it can measure on a loaded machine |"
    )
    return [*header, *rows, note], accepted, batched
