"""``switchyard load jobs``: enqueue N jobs through ``POST /jobs`` with C concurrent
clients, wait until every accepted job is finished, and print the enqueue rate, the
throughput and the enqueue→start / enqueue→finish percentiles.

Guarantee: figures are printed only once every job the API accepted has a final status
(succeeded, dead or cancelled) in PostgreSQL; otherwise it fails saying how many did not
get there within ``--timeout``. Latencies come from the jobs' own rows (``created_at``,
``started_at``, ``finished_at``: PostgreSQL's clock), so how often this tool polls does
not move them. The wait reads PostgreSQL, like ``switchyard load logs``: the settings
(``SWITCHYARD_CONFIG`` or a running dev stack's) must reach the API's database.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import orjson
import sqlalchemy as sa
from tqdm import tqdm

from switchyard.db.engine import create_engine
from switchyard.jobs.types import CATALOGUE, UnknownJobType, ValidationError, validate_payload
from switchyard_devtools.load.generator import LoadResult, Request, percentile, run_load
from switchyard_devtools.load.settings import dev_settings

FINAL = ("succeeded", "dead", "cancelled")
# Tables with a row per job and its created_at / started_at / finished_at / status.
TIMED_TABLES = ("jobs", "baseline_jobs")
# Ids per statement while waiting: bounded statements, however many jobs a run has.
CHUNK = 5_000


def job_requests(
    url: str, count: int, job_type: str, payload: dict[str, Any], max_attempts: int | None = None
) -> Iterator[Request]:
    body: dict[str, Any] = {"type": job_type, "payload": payload}
    if max_attempts is not None:
        body["max_attempts"] = max_attempts
    data = orjson.dumps(body)
    return (Request("POST", f"{url}/jobs", data) for _ in range(count))


def accepted_ids(result: LoadResult) -> list[str]:
    """The ids of the jobs the API took (202, or 200 for an idempotent repeat)."""
    ids = [str(orjson.loads(body)["id"]) for status, body in result.bodies if status in (200, 202)]
    return list(dict.fromkeys(ids))


def _chunks(ids: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), CHUNK):
        yield list(ids[start : start + CHUNK])


def wait_until_finished(
    engine: sa.Engine,
    ids: Sequence[str],
    timeout: float,
    progress: bool = True,
    table: str = "jobs",
) -> tuple[float | None, int]:
    """(seconds until every job is final or None after ``timeout``, jobs not final).

    Jobs finish roughly in the order they were enqueued, so only the oldest ``CHUNK``
    not yet final are looked up per poll: a poll costs the same for 1,000 jobs as for
    100,000, and the machine being measured is barely disturbed.
    """
    if table not in TIMED_TABLES:
        raise ValueError(f"no jobs in {table!r}")
    remaining = list(dict.fromkeys(ids))
    started = time.monotonic()
    bar = tqdm(total=len(remaining), desc="finished", unit="job", disable=not progress)
    query = sa.text(
        f"SELECT id::text FROM {table} WHERE id = ANY(CAST(:ids AS uuid[])) "  # noqa: S608
        "AND status = ANY(:final)"
    )
    try:
        while remaining and time.monotonic() - started < timeout:
            head = remaining[:CHUNK]
            try:
                with engine.connect() as connection:
                    params = {"ids": head, "final": list(FINAL)}
                    done = {row[0] for row in connection.execute(query, params)}
            except sa.exc.OperationalError as exc:
                click.echo(f"PostgreSQL unreachable, still waiting: {exc.orig}".strip(), err=True)
                time.sleep(1.0)
                continue
            remaining = [i for i in head if i not in done] + remaining[CHUNK:]
            bar.update(len(done))
            if len(done) < len(head):
                time.sleep(0.25)  # the head is not done yet; otherwise look further at once
    finally:
        bar.close()
    return (None if remaining else time.monotonic() - started), len(remaining)


@dataclass(frozen=True, slots=True)
class JobTiming:
    """One job's timestamps (seconds since the epoch, PostgreSQL's clock)."""

    created: float
    started: float | None
    finished: float | None
    status: str


def fetch_timings(engine: sa.Engine, ids: Sequence[str], table: str = "jobs") -> list[JobTiming]:
    """The jobs' timestamps; ``table``: ``jobs``, or the bench baseline's own table."""
    if table not in TIMED_TABLES:
        raise ValueError(f"no job timestamps in {table!r}")
    columns = "created_at, started_at, finished_at"
    epochs = ", ".join(f"extract(epoch FROM {c})" for c in columns.split(", "))
    query = sa.text(
        f"SELECT {epochs}, status FROM {table} WHERE id = ANY(CAST(:ids AS uuid[]))"  # noqa: S608
    )
    timings = []
    with engine.connect() as connection:
        for chunk in _chunks(ids):
            for created, started, finished, status in connection.execute(query, {"ids": chunk}):
                timings.append(
                    JobTiming(
                        float(created),
                        None if started is None else float(started),
                        None if finished is None else float(finished),
                        status,
                    )
                )
    return timings


@dataclass
class JobsSummary:
    jobs: int
    statuses: Counter[str] = field(default_factory=Counter)
    # Jobs finished / (last finish - first enqueue), and over the finishing span alone.
    throughput: float = 0.0
    completion: float = 0.0
    to_start_ms: tuple[float, float, float] = (0.0, 0.0, 0.0)
    to_finish_ms: tuple[float, float, float] = (0.0, 0.0, 0.0)


def _quantiles_ms(values: list[float]) -> tuple[float, float, float]:
    p50, p95, p99 = (percentile(values, q) * 1000 for q in (50, 95, 99))
    return p50, p95, p99


def summarise(timings: Sequence[JobTiming]) -> JobsSummary:
    finished = [t for t in timings if t.finished is not None]
    summary = JobsSummary(len(timings), Counter(t.status for t in timings))
    if not finished:
        return summary
    first_created = min(t.created for t in timings)
    ends = sorted(t.finished for t in finished if t.finished is not None)
    summary.throughput = len(finished) / max(1e-9, ends[-1] - first_created)
    starts = [t.started for t in finished if t.started is not None]
    first_start = min(starts) if starts else first_created
    summary.completion = len(finished) / max(1e-9, ends[-1] - first_start)
    summary.to_start_ms = _quantiles_ms(
        [t.started - t.created for t in finished if t.started is not None]
    )
    summary.to_finish_ms = _quantiles_ms(
        [t.finished - t.created for t in finished if t.finished is not None]
    )
    return summary


def _parse_payload(job_type: str, text: str) -> dict[str, Any]:
    try:
        payload = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--payload") from None
    if not isinstance(payload, dict):
        raise click.BadParameter("a JSON object", param_hint="--payload")
    try:
        validate_payload(job_type, payload)
    except UnknownJobType as exc:
        raise click.BadParameter(str(exc), param_hint="--type") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'payload'}: {e['msg']}" for e in exc.errors()
        )
        raise click.BadParameter(f"{job_type}: {problems}", param_hint="--payload") from None
    return payload


def _ms(values: tuple[float, float, float]) -> str:
    return "  ".join(f"p{q} {v:,.1f}" for q, v in zip((50, 95, 99), values, strict=True))


@click.command("jobs", help="POST /jobs N times, then wait until every job is finished.")
@click.option("--count", default=10_000, show_default=True, type=click.IntRange(1))
@click.option(
    "--type", "job_type", default="echo", show_default=True, type=click.Choice(sorted(CATALOGUE))
)
@click.option("--concurrency", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--payload", default="{}", show_default=True, help="the jobs' payload (JSON)")
@click.option("--max-attempts", type=click.IntRange(1, 100), default=None)
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--api", "--url", "api", default=None, help="the API [default: from the settings]")
@click.option("--timeout", default=600.0, show_default=True, help="seconds to wait for the jobs")
def jobs(
    count: int,
    job_type: str,
    concurrency: int,
    payload: str,
    max_attempts: int | None,
    plot: Path | None,
    api: str | None,
    timeout: float,
) -> None:
    body = _parse_payload(job_type, payload)
    settings = dev_settings("load")
    url = (api or f"http://{settings.api.host}:{settings.api.port}").rstrip("/")
    click.echo(f"{count} {job_type} jobs to {url}/jobs, {concurrency} concurrent")
    result = run_load(
        job_requests(url, count, job_type, body, max_attempts),
        concurrency,
        total=count,
        keep_bodies=True,
        accepted=lambda s: s in (200, 202),
        label="enqueue",
    )
    ids = accepted_ids(result)
    post_ms = _ms(_quantiles_ms(result.latencies))
    click.echo(
        f"enqueue    {len(ids) / result.elapsed:,.0f} jobs/s  (POST {post_ms} ms)"
        f"  statuses {dict(sorted(result.statuses.items()))}"
        + (f"  errors {dict(result.errors)}" if result.errors else "")
    )
    if not ids:
        raise click.ClickException("the API accepted no job")
    engine = create_engine(
        settings,
        poolclass=sa.pool.NullPool,
        connect_args={"connect_timeout": 5, "options": "-c statement_timeout=30000"},
    )
    try:
        waited, left = wait_until_finished(engine, ids, timeout)
        if waited is None:
            raise click.ClickException(f"{left} of {len(ids)} jobs not finished after {timeout}s")
        timings = fetch_timings(engine, ids)
    finally:
        engine.dispose()
    summary = summarise(timings)
    click.echo(
        f"finished   {sum(summary.statuses[s] for s in FINAL)} of {len(ids)} "
        f"{dict(summary.statuses)}, the last {waited:.1f} s after the last POST"
    )
    click.echo(
        f"throughput {summary.throughput:,.0f} jobs/s (first enqueue to last finish); "
        f"{summary.completion:,.0f} jobs/s from the first start"
    )
    click.echo(f"enqueue→start  ms  {_ms(summary.to_start_ms)}")
    click.echo(f"enqueue→finish ms  {_ms(summary.to_finish_ms)}")
    if plot is not None:
        from switchyard_devtools.load.plot import plot_run

        title = f"{len(ids):,} {job_type} jobs, {concurrency} clients, {url}"
        plot_run(timings, plot, title)
        click.echo(f"plot       {plot}")
