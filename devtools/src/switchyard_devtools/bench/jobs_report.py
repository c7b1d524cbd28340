"""The Markdown section of ``switchyard bench jobs`` (figures measured in
:mod:`switchyard_devtools.bench.jobs`).

Guarantee: every figure printed comes from the runs passed in; a run whose worker
processes did not all get partitions before the clock started is marked, not hidden.
"""

from __future__ import annotations

from dataclasses import dataclass

from switchyard_devtools.load.jobs import JobsSummary

TARGET_THROUGHPUT = 2_000
TARGET_RATIO = 0.8
TARGET_START_P99_MS = 50
TARGET_LATE_MS = 1_000


@dataclass
class Run:
    """One configuration's figures: a backlog drained, and (ours) an end-to-end run."""

    processes: int
    pool: int = 0
    drain: JobsSummary | None = None
    e2e: JobsSummary | None = None
    enqueue_per_s: float = 0.0
    joined: bool = True


@dataclass
class Idle:
    """(a) on an idle system: paced jobs, and delayed ones (start - run_at)."""

    paced: JobsSummary
    late_ms: tuple[float, float, float]  # p50, p99, max


def _ms(values: tuple[float, float, float]) -> str:
    return " / ".join(f"{v:,.1f}" for v in values)


def _completion(run: Run) -> float:
    assert run.drain is not None
    return run.drain.completion


def _mark(run: Run) -> str:
    return "" if run.joined else " (not every process had partitions)"


def report(
    ours: list[Run],
    idle: Idle,
    baseline: list[Run],
    baseline_paced: JobsSummary,
    default: tuple[int, int],
    counts: tuple[int, int],
    paced: tuple[int, float, int],
    loads: tuple[float, float] = (0.0, 0.0),
) -> str:
    count, sweep = counts
    paced_jobs, per_second, delay = paced
    (main,) = [r for r in ours if (r.processes, r.pool) == default]
    base = {r.processes: r for r in baseline}
    assert main.e2e is not None
    assert main.drain is not None
    ratio = _completion(main) / _completion(base[main.processes])
    p99_start = idle.paced.to_start_ms[2]
    lines = [
        "## Jobs: no-op `echo` jobs, state in PostgreSQL",
        "",
        "All on this machine: embedded PostgreSQL, Redis and Kafka (tansu), "
        "`switchyard-api serve` (2 gunicorn workers), its outbox relay, the job-worker "
        "process(es) and the clients. enqueue→start is `started_at - created_at` of the "
        "rows (PostgreSQL's clock; `started_at` is the claim); completion throughput is "
        "jobs / (last `finished_at` - first `started_at`) over a backlog made while the "
        "workers were running, each configuration with its own topics and groups and "
        "its workers warmed up (ours: jobs posted an hour ahead, then made due by one "
        "UPDATE of `run_at`, so the scheduler leader queues them, 1,000 per 0.2 s tick; "
        "the yardstick: rows inserted, then their messages produced). Load average "
        f"(1 min) when the run started and ended: {loads[0]:.1f} and {loads[1]:.1f} "
        "(2 cores: above 2, other work shared the machine and every figure suffers).",
        "",
        f"### (a) Our stack: `JOBS__POOL_SIZE={main.pool}`, {main.processes} worker process",
        "",
        "| measure | result | target |",
        "| --- | ---: | --- |",
        f"| enqueue, `POST /jobs` from 64 clients ({count:,} jobs) "
        f"| {main.enqueue_per_s:,.0f} jobs/s | |",
        f"| end to end, the worker running while they are posted "
        f"| {main.e2e.throughput:,.0f} jobs/s; enqueue→start p50/p95/p99 "
        f"{_ms(main.e2e.to_start_ms)} ms; enqueue→finish {_ms(main.e2e.to_finish_ms)} ms | |",
        f"| completion throughput, backlog of {count:,}{_mark(main)} "
        f"| **{_completion(main):,.0f} jobs/s** | ≥ {TARGET_THROUGHPUT:,} |",
        f"| … as a share of the yardstick (b), {main.processes} process "
        f"| **{ratio:.0%}** ({_completion(base[main.processes]):,.0f} jobs/s) "
        f"| ≥ {TARGET_RATIO:.0%} |",
        f"| idle: {paced_jobs} jobs paced at {per_second:g}/s, enqueue→start p50/p95/p99 "
        f"| {_ms(idle.paced.to_start_ms)} ms "
        f"({'met' if p99_start <= TARGET_START_P99_MS else 'not met'}) "
        f"| p99 ≤ {TARGET_START_P99_MS} ms |",
        f"| idle: enqueue→finish p50/p95/p99 | {_ms(idle.paced.to_finish_ms)} ms | |",
        f"| delayed jobs (`delay_seconds: {delay}`), start - `run_at` p50/p99/max "
        f"| {_ms(idle.late_ms)} ms | ≤ {TARGET_LATE_MS:,} ms |",
        "",
        "### (b) The yardstick: the least code with the same guarantee",
        "",
        "`devtools/src/switchyard_devtools/bench/jobs_baseline.py`: a row per job, "
        "updated at start and at end (autocommit statements), a Kafka message per job, "
        "the offset stored after the end and committed by librdkafka; one job at a time "
        "per process.",
        "",
        "| processes | completion jobs/s | ours, same processes, pool "
        f"{main.pool} | ours / yardstick |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for processes, run in sorted(base.items()):
        (same,) = [r for r in ours if (r.processes, r.pool) == (processes, main.pool)]
        lines.append(
            f"| {processes} | {_completion(run):,.0f}{_mark(run)} | {_completion(same):,.0f} "
            f"| {_completion(same) / _completion(run):.0%} |"
        )
    lines += [
        "",
        f"Yardstick, {paced_jobs} jobs paced at {per_second:g}/s: enqueue→start "
        f"p50/p95/p99 {_ms(baseline_paced.to_start_ms)} ms, enqueue→finish "
        f"{_ms(baseline_paced.to_finish_ms)} ms.",
        "",
        "### (c) Worker pool size and processes",
        "",
        f"Backlog drain and end to end ({count:,} jobs for the configuration of (a), "
        f"{sweep // 5:,} for a pool of 1, {sweep:,} for the others); latencies of the "
        "end-to-end run.",
        "",
        "| processes | `JOBS__POOL_SIZE` | completion jobs/s | end to end jobs/s "
        "| enqueue→start p50/p95/p99 ms | enqueue→finish p50/p95/p99 ms |",
        "| ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for run in ours:
        assert run.e2e is not None
        lines.append(
            f"| {run.processes} | {run.pool} | {_completion(run):,.0f}{_mark(run)} "
            f"| {run.e2e.throughput:,.0f} | {_ms(run.e2e.to_start_ms)} "
            f"| {_ms(run.e2e.to_finish_ms)} |"
        )
    return "\n".join(lines)
