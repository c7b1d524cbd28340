"""``switchyard load logs|health``: push events through the API, then wait until every
accepted one is readable in PostgreSQL, and print what it took (``switchyard load jobs``:
:mod:`switchyard_devtools.load.jobs`).

Guarantee: with ``--wait`` it reports success only once every event the API accepted
(202) is readable in PostgreSQL. A dev convenience the runtime library does not have:
without ``SWITCHYARD_CONFIG`` it uses a running dev stack's ``var/dev/switchyard.toml``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import click
import orjson
import sqlalchemy as sa

from switchyard.db.engine import create_engine
from switchyard_devtools.load.generator import LoadResult, Request, run_load
from switchyard_devtools.load.jobs import jobs
from switchyard_devtools.load.settings import dev_settings

TABLES = {"logs": "logs", "health": "health_pings"}


def _item(kind: str, service: str, index: int) -> dict[str, object]:
    if kind == "logs":
        return {
            "service": service,
            "level": ("info", "warning", "error")[index % 3],
            "message": f"load event {index}",
            "attributes": {"n": index},
        }
    return {
        "service": service,
        "status": ("up", "degraded", "down")[index % 3],
        "latency_ms": index % 250,
    }


def requests(kind: str, url: str, count: int, batch: int, services: list[str]) -> Iterator[Request]:
    """``count`` events in requests of ``batch``, spread over ``services`` (partition keys)."""
    for start in range(0, count, batch):
        items = [
            _item(kind, services[i % len(services)], i)
            for i in range(start, min(count, start + batch))
        ]
        body = orjson.dumps(items[0] if batch == 1 else items)
        yield Request("POST", f"{url}/{kind}", body, events=len(items))


def count_stored(engine: sa.Engine, kind: str, services: list[str]) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                sa.text(f"SELECT count(*) FROM {TABLES[kind]} WHERE service = ANY(:s)"),  # noqa: S608
                {"s": services},
            ).scalar_one()
        )


def wait_until_stored(
    engine: sa.Engine, kind: str, services: list[str], expected: int, timeout: float
) -> float | None:
    """Seconds until ``expected`` rows are readable, or None after ``timeout``."""
    started = time.monotonic()
    warned = False
    while time.monotonic() - started < timeout:
        try:
            if count_stored(engine, kind, services) >= expected:
                return time.monotonic() - started
        except sa.exc.OperationalError as exc:
            # PostgreSQL down is a scenario worth measuring, not a reason to stop counting.
            if not warned:
                click.echo(f"PostgreSQL unreachable, still waiting: {exc.orig}".strip(), err=True)
                warned = True
            time.sleep(1.0)
            continue
        time.sleep(0.1)
    return None


def _report(result: LoadResult) -> None:
    summary = result.summary()
    click.echo(f"requests/s {summary['requests_per_s']:>10}   events/s {summary['events_per_s']}")
    click.echo(
        f"latency ms  p50 {summary['p50_ms']}  p95 {summary['p95_ms']}  p99 {summary['p99_ms']}"
    )
    click.echo(
        f"429 (overloaded) {result.statuses.get(429, 0)}   statuses {summary['statuses']}"
        + (f"   errors {summary['errors']}" if result.errors else "")
    )


@click.group()
def load() -> None:
    """Generate load against the API and measure it end to end."""


def _command(kind: str) -> click.Command:
    @click.command(kind, help=f"POST {kind} events, then wait until all are stored.")
    @click.option("--count", default=100_000, show_default=True, type=click.IntRange(1))
    @click.option("--concurrency", default=50, show_default=True, type=click.IntRange(1, 10_000))
    @click.option(
        "--batch",
        default=100,
        show_default=True,
        type=click.IntRange(1, 10_000),
        help="events per request (1: a single object)",
    )
    @click.option("--url", default=None, help="the API [default: from the settings]")
    @click.option(
        "--services",
        "service_count",
        default=24,
        show_default=True,
        type=click.IntRange(1),
        help="distinct service names (Kafka keys)",
    )
    @click.option(
        "--wait/--no-wait",
        default=True,
        show_default=True,
        help="wait until every accepted event is readable in PostgreSQL",
    )
    @click.option("--timeout", default=600.0, show_default=True, help="for --wait, seconds")
    def command(
        count: int,
        concurrency: int,
        batch: int,
        url: str | None,
        service_count: int,
        wait: bool,
        timeout: float,
    ) -> None:
        settings = dev_settings("load")
        url = (url or f"http://{settings.api.host}:{settings.api.port}").rstrip("/")
        run = uuid.uuid4().hex[:8]
        services = [f"load-{run}-{n}" for n in range(service_count)]
        click.echo(
            f"{count} {kind} events to {url}, {batch} per request, {concurrency} "
            f"concurrent; services load-{run}-*"
        )
        started = time.monotonic()
        result = run_load(
            requests(kind, url, count, batch, services),
            concurrency,
            total=-(-count // batch),
            label=kind,
        )
        _report(result)
        if not wait or not result.events_accepted:
            return
        # Timeouts everywhere: a PostgreSQL outage during the wait must end in a retry,
        # never in a connection that hangs.
        engine = create_engine(
            settings,
            poolclass=sa.pool.NullPool,
            connect_args={"connect_timeout": 5, "options": "-c statement_timeout=10000"},
        )
        try:
            drained = wait_until_stored(engine, kind, services, result.events_accepted, timeout)
        finally:
            engine.dispose()
        if drained is None:
            raise click.ClickException(f"not every accepted event was stored within {timeout}s")
        click.echo(
            f"all {result.events_accepted} accepted events readable "
            f"{drained:.2f}s after the last response; end to end "
            f"{time.monotonic() - started:.2f}s "
            f"({result.events_accepted / (time.monotonic() - started):.0f} events/s)"
        )

    return command


load.add_command(_command("logs"))
load.add_command(_command("health"))
load.add_command(jobs)
