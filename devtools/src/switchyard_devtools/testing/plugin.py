"""pytest plugin (loaded by the root pytest config): real-infrastructure fixtures.

Unit tests use none of these. Anything that asks for ``settings`` (or a fixture built on
it) is an integration test and talks to real servers.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from switchyard.config import Settings
from switchyard.db.engine import create_engine
from switchyard.kafka.producer import EventProducer
from switchyard.logging import configure_logging
from switchyard_devtools.testing.infra import InfraUrls, provide_infra, session_settings


@pytest.fixture(scope="session")
def infra() -> Iterator[InfraUrls]:
    configure_logging("tests", "warning")
    # Not under pytest's numbered temp dirs: another pytest session on the machine (a
    # bench's, a second suite's) prunes all but the newest three, and it once deleted a
    # running suite's PostgreSQL data directory under it.
    with (
        tempfile.TemporaryDirectory(prefix="switchyard-test-infra-") as workdir,
        provide_infra(Path(workdir)) as urls,
    ):
        yield urls


@pytest.fixture(scope="session")
def settings(infra: InfraUrls) -> Settings:
    return session_settings(infra)


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Iterator[sa.Engine]:
    engine = create_engine(settings)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def redis_client(settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.redis_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def producer(settings: Settings) -> Iterator[EventProducer]:
    producer = EventProducer(settings, "test")
    yield producer
    producer.close()
