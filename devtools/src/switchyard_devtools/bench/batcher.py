"""``switchyard bench batcher``: the batcher against its yardstick, its batch sizes, its latency.

Every figure is measured in this run on these servers, so ratios hold while the machine's
load moves absolute figures:

1. the same events (posted through the API) drained by the least consumer that keeps the
   batcher's contract (:mod:`.batcher_minimum`) and by the real ``switchyard-batcher``
   process, twice each, taking turns; rows/s counted by PostgreSQL (``stored_at``);
2. a batch-size sweep: per size, a backlog drained (throughput) and end-to-end latency at
   one paced rate, half of the batcher's peak (the default size's row is the target's);
   plus the default size with natural batching (20 ms max wait); a table and
   ``bench/batcher-sweep.png``;
3. pytest-benchmark micro-benchmarks of the batcher's per-record work.

End to end is accepted at the API (``received_at``) -> row readable, seen by a reader
polling every 20 ms for marker events (one-event requests mixed into the load): it counts
the commit and errs long by up to the poll interval.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import sqlalchemy as sa

from switchyard.config import Settings, TopicBatchSettings
from switchyard.kafka.topics import LOGS, topic_name
from switchyard_devtools.bench.batcher_latency import POLL_SECONDS, Markers, paced_with_markers
from switchyard_devtools.bench.stack import api_server, bench_settings, script, service
from switchyard_devtools.load.cli import requests as load_requests
from switchyard_devtools.load.generator import run_load
from switchyard_devtools.stack.processes import free_port
from switchyard_devtools.testing.infra import isolated_settings

NAME = "batcher"
EVENTS = int(os.environ.get("BENCH_BATCHER_EVENTS", "200000"))
SWEEP_EVENTS = EVENTS // 2
DEFAULT_SIZE = TopicBatchSettings().max_size
DEFAULT_WAIT = TopicBatchSettings().max_wait_seconds
# (batch size, max wait): the sizes at the default wait, and the default size with natural
# batching (a 20 ms linger: what is fetched is written at once), run next to each other so
# the two compare under the same load; in ten such pairs neither was ahead (README).
NATURAL_WAIT = 0.02
SWEEP = sorted(
    {(size, DEFAULT_WAIT) for size in (100, 500, 2_000, DEFAULT_SIZE)}
    | {(DEFAULT_SIZE, NATURAL_WAIT)}
)
PACED_SECONDS = 12.0
STALL_SECONDS = 15.0
SERVICES = [f"bench-{n}" for n in range(24)]
PICTURE = Path(__file__).resolve().parents[4] / "bench" / "batcher-sweep.png"


def _post(url: str, count: int) -> float:
    """Events/s the API accepted while flooded with ``count`` events, 100 per request."""
    result = run_load(load_requests("logs", url, count, 100, SERVICES), 16, show_progress=False)
    assert result.events_accepted == count, f"the API accepted {result.statuses}"
    return count / result.elapsed


def _rows(engine: sa.Engine, table: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())  # noqa: S608


def _wait_rows(engine: sa.Engine, table: str, expected: int) -> int:
    """Rows in ``table`` once it holds ``expected``, or once it stopped growing for
    STALL_SECONDS: tansu (the embedded broker) can let a fetch skip a record batch that a
    concurrent producer had not finished writing; the records are in the topic, but a
    consumer that got past them never sees them (README, Benchmarks: Batcher)."""
    rows, grew_at = -1, time.monotonic()
    while rows < expected:
        if (now := _rows(engine, table)) != rows:
            rows, grew_at = now, time.monotonic()
        elif rows > 0 and time.monotonic() - grew_at > STALL_SECONDS:
            break
        time.sleep(0.25)
    return rows


def _rate(engine: sa.Engine, table: str) -> float:
    """Rows/s in the steady state, by PostgreSQL's ``stored_at`` (each batch's transaction
    start): rows written from the batch holding the row at 10 % to the start of the last
    batch, over that span. The same count for both consumers; start-up (imports, joining
    the group, the rebalances while the batcher's threads join one by one) is left out."""
    query = (
        "WITH ordered AS (SELECT stored_at, row_number() OVER (ORDER BY stored_at) AS n, "  # noqa: S608
        f"count(*) OVER () AS total FROM {table}), "
        "span AS (SELECT min(stored_at) FILTER (WHERE n >= total / 10) AS lo, "
        "max(stored_at) AS hi FROM ordered) "
        "SELECT count(*) FILTER (WHERE stored_at >= lo AND stored_at < hi), "
        "extract(epoch FROM max(hi - lo)) FROM ordered, span"
    )
    with engine.connect() as connection:
        rows, seconds = connection.execute(sa.text(query)).one()
    return float(rows) / max(1e-9, float(seconds))


def _minimum(settings: Settings, workdir: Path, expected: int) -> None:
    """Run the yardstick until its table (``logs_minimum``) holds ``expected`` rows."""
    from switchyard_batcher.service import fetch_config

    batching = settings.batcher.logs
    config = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "group.id": f"{settings.kafka.topic_prefix}minimum",
        "auto.offset.reset": "earliest",
        "session.timeout.ms": settings.kafka.session_timeout_ms,  # as the batcher's
        "heartbeat.interval.ms": max(100, settings.kafka.session_timeout_ms // 10),
        "topic": topic_name(settings, LOGS),
        "max.batch": batching.max_size,
        **fetch_config(batching),
    }
    argv = [sys.executable, "-m", "switchyard_devtools.bench.batcher_minimum"]
    with open(workdir / "minimum.log", "ab") as log:
        subprocess.run(
            [
                *argv,
                settings.database_url,
                "logs_minimum",
                str(expected),
                orjson.dumps(config).decode(),
            ],
            check=True,
            timeout=600,
            stdout=log,
            stderr=log,
        )


def _batcher(
    settings: Settings, workdir: Path, **env: str
) -> contextlib.AbstractContextManager[int]:
    """The real ``switchyard-batcher`` process, default settings unless ``env`` says."""
    environment = {
        "ADMIN_PORT": str(free_port()),
        "BATCHER__JSONL_DIR": str(workdir / "sinks"),
        **env,
    }
    return service(
        [script("switchyard-batcher")], settings, environment, log=workdir / "batcher.log"
    )


def _yardstick(settings: Settings, workdir: Path) -> tuple[list[str], float, float]:
    """Rows of the yardstick table; the batcher's peak rows/s and the API's events/s."""
    rows, ratios, peaks, accepted = [], [], [], []
    for round_ in (1, 2):
        own = isolated_settings(settings, f"yardstick{round_}")
        engine = sa.create_engine(own.sqlalchemy_url, poolclass=sa.pool.NullPool)
        with api_server(own, workdir, log_name=f"api-yardstick{round_}") as url:
            accepted.append(_post(url, EVENTS))
        rates: dict[str, float] = {}
        stored: dict[str, int] = {}
        for who in ("minimum", "ours") if round_ == 1 else ("ours", "minimum"):
            if who == "minimum":
                _minimum(own, workdir, EVENTS)
                stored[who] = _rows(engine, "logs_minimum")
                rates[who] = _rate(engine, "logs_minimum")
            else:
                with _batcher(own, workdir):
                    stored[who] = _wait_rows(engine, "logs", EVENTS)
                rates[who] = _rate(engine, "logs")
        engine.dispose()
        ratios.append(rates["ours"] / rates["minimum"])
        peaks.append(rates["ours"])
        first = "(d) then ours" if round_ == 1 else "ours then (d)"
        rows.append(
            f"| {round_} ({first}) | {rates['minimum']:,.0f} | {rates['ours']:,.0f} | "
            f"**{ratios[-1]:.0%}** | {EVENTS - stored['minimum']} / {EVENTS - stored['ours']} "
            f"| {_load()} |"
        )
    table = [
        f"The same {EVENTS:,} events (posted through the API, 100 per request, "
        f"{len(SERVICES)} services over {settings.kafka.partitions} partitions) drained by "
        "(d), the least consumer that keeps the batcher's contract (one thread: consume, "
        "parse once, COPY into `logs_minimum` shaped like `logs`, commit, commit offsets; "
        "deduplicated by id as the PostgreSQL sink is), and by `switchyard-batcher` with its "
        "defaults (PostgreSQL and JSON Lines sinks, "
        f"{settings.batcher.logs.workers} consumer threads, batches of "
        f"{settings.batcher.logs.max_size:,}); fresh topics and database per round. Rows/s "
        "in the steady state, from PostgreSQL's `stored_at`: from the batch holding the row at "
        "10 % to the last batch's start (start-up and the group's rebalances left out).",
        "",
        "| round | (d) rows/s | ours rows/s | ours / (d) | never seen (d) / ours | "
        "load (1/5/15 min) |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
        *rows,
        "",
        f"Ours / (d): **{min(ratios):.0%} to {max(ratios):.0%}** (target ≥ 90 %). Never "
        "seen: events the API accepted that the consumer was never given (tansu, the "
        "embedded broker, can let a fetch skip a batch a concurrent producer was still "
        "writing; they are in the topic: README, Benchmarks, Batcher).",
    ]
    return table, max(peaks), min(accepted)


def _load() -> str:
    return " / ".join(f"{value:.1f}" for value in os.getloadavg())


@dataclass(frozen=True)
class SweepPoint:
    size: int
    max_wait: float  # seconds
    drained: float  # rows/s draining a backlog
    offered: float  # events/s the API accepted during the paced run
    p50: float
    p95: float
    p99: float
    markers: int
    unseen: int  # accepted by the API, never delivered to the batcher (a broker skip)


def _sweep_point(
    settings: Settings,
    workdir: Path,
    point: tuple[int, float],
    rate: float,
    profile: Path | None,
) -> SweepPoint:
    size, wait = point
    name = f"sweep{size}-{wait * 1000:.0f}ms"
    own = isolated_settings(settings, name)
    engine = sa.create_engine(own.sqlalchemy_url, poolclass=sa.pool.NullPool)
    batching = {"BATCHER__LOGS__MAX_SIZE": str(size), "BATCHER__LOGS__MAX_WAIT_SECONDS": str(wait)}
    try:
        with (
            api_server(own, workdir, log_name=f"api-{name}") as url,
            _batcher(own, workdir, **batching) as pid,
        ):
            _post(url, SWEEP_EVENTS)
            _wait_rows(engine, "logs", SWEEP_EVENTS)
            drained = _rate(engine, "logs")
            with Markers(engine) as markers, _profiled(pid, profile):
                paced = run_load(
                    paced_with_markers(url, rate, PACED_SECONDS, SERVICES), 64, show_progress=False
                )
                expected = SWEEP_EVENTS + paced.events_accepted
                unseen = expected - _wait_rows(engine, "logs", expected)
                time.sleep(5 * POLL_SECONDS)
        p50, p95, p99 = markers.percentiles_ms()
        bulk = paced.events_accepted - len(markers.latencies())
        return SweepPoint(
            size,
            wait,
            drained,
            bulk / paced.elapsed,
            p50,
            p95,
            p99,
            len(markers.latencies()),
            unseen,
        )
    finally:
        engine.dispose()


@contextlib.contextmanager
def _profiled(pid: int, svg: Path | None) -> Iterator[None]:
    """py-spy samples ``pid`` while the block runs (a flame graph), when ``svg`` is given."""
    if svg is None:
        yield
        return
    spy = subprocess.Popen(
        [
            script("py-spy"),
            "record",
            "--pid",
            str(pid),
            "--rate",
            "50",
            "--nonblocking",
            "--format",
            "flamegraph",
            "--output",
            str(svg),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes the graph on SIGINT
        spy.wait(timeout=60)


def _is_default(point: SweepPoint) -> bool:
    return (point.size, point.max_wait) == (DEFAULT_SIZE, DEFAULT_WAIT)


def _sweep_table(points: list[SweepPoint], rate: float) -> list[str]:
    rows = [
        f"| {p.size:,} | {p.max_wait * 1000:g} ms{' (default)' if _is_default(p) else ''} | "
        f"{p.drained:,.0f} | {p.offered:,.0f} | {p.p50:.0f} | {p.p95:.0f} | {p.p99:.0f} | "
        f"{p.markers} | {p.unseen} |"
        for p in points
    ]
    return [
        "Batch-size sweep (`BATCHER__LOGS__MAX_SIZE`, `BATCHER__LOGS__MAX_WAIT_SECONDS`: "
        "how long a batch may linger after its first record for more; the fetched records "
        f"are taken at once either way): a backlog of {SWEEP_EVENTS:,} events drained, then "
        f"{PACED_SECONDS:g} s of load paced at {rate:,.0f} events/s (half the peak above) "
        "with end to end measured on marker events (accepted at the API -> row readable, "
        "polled every 20 ms). Picture: [batcher-sweep.png](batcher-sweep.png).",
        "",
        "| batch size | max wait | drain rows/s | paced events/s | e2e p50 ms | p95 ms | p99 ms "
        "| markers | never seen |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *rows,
        "",
    ]


def _plot(points: list[SweepPoint], rate: float, picture: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    others = [p for p in points if p.max_wait != DEFAULT_WAIT]
    points = [p for p in points if p.max_wait == DEFAULT_WAIT]
    sizes = [p.size for p in points]
    figure, (throughput, latency) = plt.subplots(1, 2, figsize=(10, 4.2))
    throughput.plot(sizes, [p.drained for p in points], "o-", label="rows/s")
    throughput.set_ylabel("rows/s draining a backlog")
    for label, values, style in (
        ("p50", [p.p50 for p in points], "o-"),
        ("p95", [p.p95 for p in points], "^-"),
        ("p99", [p.p99 for p in points], "s--"),
    ):
        latency.plot(sizes, values, style, label=label)
    for other in others:  # the same size at another max wait: hollow, beside the line
        wait = f"max wait {other.max_wait * 1000:g} ms"
        latency.plot([other.size], [other.p99], "s", fillstyle="none", label=f"p99, {wait}")
        throughput.plot([other.size], [other.drained], "o", fillstyle="none", label=wait)
    if others:
        throughput.legend()
    throughput.set_ylim(bottom=0)  # after every point: a fixed limit stops autoscaling
    latency.axhline(500, color="grey", linewidth=0.8, linestyle=":", label="p99 target")
    latency.set_ylabel(f"accepted -> readable at {rate:,.0f} events/s (ms)")
    latency.set_ylim(bottom=0)
    latency.legend()
    for axis in (throughput, latency):
        axis.set_xscale("log")
        axis.set_xticks(sizes, [f"{size:,}" for size in sizes])
        axis.set_xlabel("batch size (BATCHER__LOGS__MAX_SIZE)")
    figure.suptitle(
        "Batcher: batch size vs throughput and end-to-end latency "
        f"(max wait {DEFAULT_WAIT * 1000:g} ms)"
    )
    figure.tight_layout()
    picture.parent.mkdir(parents=True, exist_ok=True)
    partial = picture.with_suffix(".tmp.png")
    figure.savefig(partial, dpi=110)
    plt.close(figure)
    partial.replace(picture)


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
    lines = ["## Batcher: Kafka to PostgreSQL", "", f"Load average at the start: {_load()}.", ""]
    profile = os.environ.get("BENCH_BATCHER_FLAME")
    with bench_settings(workdir) as settings:
        table, peak, api_rate = _yardstick(settings, workdir)
        rate = min(peak, api_rate) / 2
        points = [
            _sweep_point(
                settings,
                workdir,
                point,
                rate,
                Path(profile) if profile and point == (DEFAULT_SIZE, DEFAULT_WAIT) else None,
            )
            for point in SWEEP
        ]
    default = next(p for p in points if _is_default(p))
    lines += [
        *table,
        "",
        *_sweep_table(points, rate),
        f"End to end at half the peak ({rate:,.0f} events/s; the batcher's peak "
        f"{peak:,.0f} rows/s, the API's {api_rate:,.0f} events/s), default batch size "
        f"and max wait: "
        f"p50 {default.p50:.0f} ms, p95 {default.p95:.0f} ms, **p99 {default.p99:.0f} ms** "
        f"(target ≤ 500 ms). Load at the end: {_load()}.",
        "",
        *_components(workdir),
        "",
    ]
    _plot(points, rate, PICTURE)
    return "\n".join(lines)
