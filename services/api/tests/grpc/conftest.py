"""A real gRPC server on a free port, over the test session's PostgreSQL, and a client."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest
import sqlalchemy as sa

from switchyard.config import Settings
from switchyard.kafka.topics import job_topics
from switchyard_api.grpc.gen import jobs_pb2_grpc
from switchyard_api.grpc.server import build_server
from switchyard_api.grpc.service import JobsService


def start_server(settings: Settings, engine: sa.Engine) -> tuple[grpc.Server, str]:
    service = JobsService(settings, engine, job_topics(settings))
    server, port, _ = build_server(
        service, "127.0.0.1", 0, threads=4, max_message_bytes=settings.api.max_body_bytes
    )
    server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture(scope="session")
def grpc_server_for() -> Callable[[Settings, sa.Engine], tuple[grpc.Server, str]]:
    """Start another server (on other settings); the caller stops it."""
    return start_server


@pytest.fixture(scope="module")
def address(settings: Settings, engine: sa.Engine) -> Iterator[str]:
    server, target = start_server(settings, engine)
    yield target
    server.stop(None).wait()


@pytest.fixture(scope="module")
def channel(address: str) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(address) as channel:
        yield channel


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> jobs_pb2_grpc.JobsStub:
    return jobs_pb2_grpc.JobsStub(channel)
