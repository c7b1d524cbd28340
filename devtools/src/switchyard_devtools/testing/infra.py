"""Finding or starting the servers a test session talks to.

Per server: its URL from the environment (``DATABASE_URL``, ``REDIS_URL``,
``KAFKA_BOOTSTRAP_SERVERS``) when set; else testcontainers when
``SWITCHYARD_TEST_INFRA=containers`` (needs Docker); else an embedded server.
Each session gets its own database, topic prefix and Redis key prefix, so runs never
see each other's data even on shared servers.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from switchyard.config import Settings, load_settings
from switchyard.db.migrate import upgrade
from switchyard.kafka.topics import ensure_topics

# The test sessions' admin token: long enough for the settings' check, known to tests.
TEST_ADMIN_TOKEN = "test-admin-token-of-the-suite-only-0001"  # noqa: S105


@dataclass(frozen=True)
class InfraUrls:
    database_url: str
    redis_url: str
    kafka_bootstrap_servers: str


@contextlib.contextmanager
def provide_infra(workdir: Path) -> Iterator[InfraUrls]:
    with contextlib.ExitStack() as stack:
        mode = os.environ.get("SWITCHYARD_TEST_INFRA", "embedded")
        urls = {
            "postgres": os.environ.get("DATABASE_URL"),
            "redis": os.environ.get("REDIS_URL"),
            "kafka": os.environ.get("KAFKA_BOOTSTRAP_SERVERS"),
        }
        for name, url in urls.items():
            if url:
                continue
            if mode == "containers":
                urls[name] = stack.enter_context(_container(name))
            else:
                urls[name] = stack.enter_context(_embedded(name, workdir))
        yield InfraUrls(urls["postgres"] or "", urls["redis"] or "", urls["kafka"] or "")


@contextlib.contextmanager
def _embedded(name: str, workdir: Path) -> Iterator[str]:
    from switchyard_devtools.stack import infra

    starters = {
        "postgres": lambda: infra.start_postgres(workdir / "postgres" / "data"),
        "redis": lambda: infra.start_redis(workdir / "redis"),
        "kafka": lambda: infra.start_kafka(workdir / "kafka"),
    }
    server = starters[name]()
    try:
        yield server.url
    finally:
        server.stop()


@contextlib.contextmanager
def _container(name: str) -> Iterator[str]:
    if name == "postgres":
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:17-alpine", driver=None) as pg:
            yield pg.get_connection_url()
    elif name == "redis":
        from testcontainers.redis import RedisContainer

        with RedisContainer("redis:7-alpine") as rd:
            yield f"redis://{rd.get_container_host_ip()}:{rd.get_exposed_port(6379)}/0"
    else:
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("confluentinc/cp-kafka:7.7.1").with_kraft() as kafka:
            yield kafka.get_bootstrap_server()


def session_settings(urls: InfraUrls, **overrides: object) -> Settings:
    """Settings isolated for one test session: own database, topic and key prefixes."""
    run = uuid.uuid4().hex[:8]
    base = urls.database_url.rsplit("/", 1)[0]
    values: dict[str, object] = {
        "environment": "test",
        "database_url": f"{base}/switchyard_test_{run}",
        "redis_url": urls.redis_url,
        "redis_key_prefix": f"test-{run}:",
        "kafka_bootstrap_servers": urls.kafka_bootstrap_servers,
        "kafka": {"topic_prefix": f"test-{run}.", "partitions": 3, "session_timeout_ms": 6000},
        "admin_token": TEST_ADMIN_TOKEN,
        "log_format": "json",
    }
    values.update(overrides)
    settings = load_settings(**values)
    upgrade(settings)
    ensure_topics(settings)
    return settings


def isolated_settings(settings: Settings, name: str) -> Settings:
    """``settings`` with a migrated database and a topic prefix of one test's own (named
    ``<name>_<run>`` and ``<name>-<run>.``), so another test's workers never see its rows."""
    run = uuid.uuid4().hex[:8]
    base = settings.database_url.rsplit("/", 1)[0]
    kafka = settings.kafka.model_copy(update={"topic_prefix": f"{name}-{run}."})
    own = settings.model_copy(update={"database_url": f"{base}/{name}_{run}", "kafka": kafka})
    upgrade(own)
    ensure_topics(own)
    return own


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment variables that make a child process use ``settings``."""
    env = dict(os.environ)
    env.pop("SWITCHYARD_CONFIG", None)
    env.update(
        {
            "ENVIRONMENT": settings.environment,
            "DATABASE_URL": settings.database_url,
            "REDIS_URL": settings.redis_url,
            "REDIS_KEY_PREFIX": settings.redis_key_prefix,
            "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
            "KAFKA__PARTITIONS": str(settings.kafka.partitions),
            "KAFKA__SESSION_TIMEOUT_MS": str(settings.kafka.session_timeout_ms),
            # Every service serves an admin port (the API's gunicorn master too): a free
            # one, unless the caller names it, so parallel processes never collide on 9100.
            "ADMIN_PORT": "0",
        }
    )
    # An empty ADMIN_TOKEN is refused at start, like a weak one: unset means "none".
    if settings.admin_token is None:
        env.pop("ADMIN_TOKEN", None)
    else:
        env["ADMIN_TOKEN"] = settings.admin_token.get_secret_value()
    return env
