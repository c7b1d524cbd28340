"""Composition of a worker process: settings, logging, tracing, admin server, stop signal.

A worker's ``__main__`` hands :func:`run_worker` its name, the dependencies it needs and
its main loop; everything operational is the same in every service.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import redis
import sqlalchemy as sa

from switchyard import tracing
from switchyard.admin_server import AdminServer
from switchyard.config import ConfigError, Settings, load_settings
from switchyard.db.engine import create_engine
from switchyard.kafka.producer import EventProducer
from switchyard.kafka.topics import ensure_topics_patiently
from switchyard.lifecycle import StopSignal
from switchyard.logging import configure_logging, get_logger
from switchyard.readiness import Readiness, kafka_check, postgres_check, redis_check

log = get_logger(__name__)


@dataclass
class WorkerContext:
    """What a worker's main loop is given; dependencies are created on first use."""

    settings: Settings
    stop: StopSignal
    readiness: Readiness
    _closers: list[Callable[[], None]] = field(default_factory=list)

    @cached_property
    def engine(self) -> sa.Engine:
        engine = create_engine(self.settings)
        self._closers.append(engine.dispose)
        return engine

    @cached_property
    def redis(self) -> redis.Redis:
        client = redis.Redis.from_url(self.settings.redis_url, socket_timeout=5)
        self._closers.append(client.close)
        return client

    @cached_property
    def producer(self) -> EventProducer:
        producer = EventProducer(self.settings, self.settings.service_name)
        self._closers.append(producer.close)
        return producer

    def close(self) -> None:
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception as exc:  # keep closing the others
                log.warning("closing a dependency failed", error=str(exc))


def run_worker(
    name: str,
    main_loop: Callable[[WorkerContext], None],
    needs: Sequence[str] = ("postgres", "redis", "kafka"),
) -> None:
    """Run ``main_loop`` as service ``name`` until SIGTERM; exit non-zero if it crashes."""
    try:
        settings = load_settings(service_name=name)
    except ConfigError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(name, settings.log_level, settings.log_format)
    tracing.configure_tracing(name, settings.otel_exporter_otlp_endpoint)
    stop = StopSignal().install()
    # A worker needs each of its dependencies for every record: all are required.
    context = WorkerContext(settings, stop, Readiness({}, stopping=stop.is_set))
    checks = {
        "postgres": lambda: postgres_check(context.engine)(),
        "redis": lambda: redis_check(context.redis)(),
        "kafka": kafka_check(settings),
    }
    for dependency in needs:
        context.readiness.add(dependency, checks[dependency])
    admin = AdminServer(context.readiness, "0.0.0.0", settings.admin_port).start()
    log.info("service starting", admin_port=admin.port)
    try:
        if "kafka" in needs:
            ensure_topics_patiently(settings, stop.is_set)
        main_loop(context)
    except Exception:
        log.exception("service crashed")
        raise SystemExit(1) from None
    finally:
        admin.alive = False
        context.close()
        admin.stop()
        log.info("service stopped")


def idle_until_stopped(context: WorkerContext) -> None:
    """The main loop of a service that has no work of its own yet."""
    context.stop.wait()
