"""``switchyard-api grpc`` as a real process: health, reflection, and a graceful SIGTERM."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from switchyard.config import Settings
from switchyard.db.models.jobs import Job as JobRow
from switchyard_api.grpc.gen import jobs_pb2, jobs_pb2_grpc
from switchyard_devtools.bench.stack import script
from switchyard_devtools.stack.processes import free_port, spawn, stop_process
from switchyard_devtools.testing.infra import settings_env

pytestmark = pytest.mark.integration
ADMIN = (("authorization", "Bearer test-admin-token-of-the-suite-only-0001"),)
SERVICE = "switchyard.jobs.v1.Jobs"


def _wait_for(condition: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise TimeoutError(what)


class Server:
    def __init__(self, settings: Settings, log: Path, extra: dict[str, str]) -> None:
        self.port = free_port()
        self.log = log
        env = {
            **settings_env(settings),
            "ADMIN_PORT": str(free_port()),
            "LOG_LEVEL": "info",
            **extra,
        }
        with open(log, "ab") as out:
            self.process = spawn(
                [
                    script("switchyard-api"),
                    "grpc",
                    "--port",
                    str(self.port),
                    "--grace-seconds",
                    "30",
                ],
                env=env,
                stdout=out,
            )

    def logged(self, text: str) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"the server exited; its log:\n{self.log.read_text()[-3000:]}")
        return text in self.log.read_text()


@pytest.fixture
def server(request: pytest.FixtureRequest, settings: Settings, tmp_path: Path) -> Iterator[Server]:
    running = Server(settings, tmp_path / "grpc.log", getattr(request, "param", {}))
    _wait_for(lambda: running.logged("gRPC serving"), "the server did not start")
    yield running
    stop_process(running.process, signal.SIGKILL, 5)


def _health(channel: grpc.Channel, service: str) -> int:
    check = health_pb2_grpc.HealthStub(channel).Check
    return int(check(health_pb2.HealthCheckRequest(service=service), timeout=5).status)


def test_health_and_reflection(server: Server) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        serving = health_pb2.HealthCheckResponse.SERVING
        _wait_for(lambda: _health(channel, SERVICE) == serving, "not SERVING")
        assert _health(channel, "") == serving

        reflect = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo
        (answer,) = reflect(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {s.name for s in answer.list_services_response.service}
        assert {SERVICE, "grpc.health.v1.Health"} <= names

        payload = struct_pb2.Struct()
        payload.update({"via": "process"})
        response = jobs_pb2_grpc.JobsStub(channel).Enqueue(
            jobs_pb2.EnqueueRequest(type="echo", payload=payload)
        )
        assert response.created and response.job.status == jobs_pb2.JOB_STATUS_QUEUED


def test_sigterm_lets_the_call_in_flight_finish(server: Server, engine: sa.Engine) -> None:
    table = JobRow.__table__
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = jobs_pb2_grpc.JobsStub(channel)
        payload = struct_pb2.Struct()
        payload.update({})
        job = stub.Enqueue(jobs_pb2.EnqueueRequest(type="echo", payload=payload)).job
        with engine.connect() as locker:
            # Hold the job's row: the server's cancel waits on it, in flight.
            locker.execute(
                sa.select(table.c.id).where(table.c.id == uuid.UUID(job.id)).with_for_update()
            )
            pending: Future[jobs_pb2.Job] = stub.CancelJob.future(  # type: ignore[assignment]
                jobs_pb2.CancelJobRequest(id=job.id), metadata=ADMIN, timeout=60
            )
            _wait_for(lambda: _lock_waiters(engine) > 0, "the cancel never reached the lock")
            server.process.send_signal(signal.SIGTERM)
            _wait_for(lambda: server.logged("gRPC stopping"), "SIGTERM was not taken")
            # A new connection is refused while the call in flight still runs. (A new
            # call on a connection made before may wait for the end of the grace: gRPC.)
            with (
                grpc.insecure_channel(f"127.0.0.1:{server.port}") as late,
                pytest.raises(grpc.RpcError) as refused,
            ):
                jobs_pb2_grpc.JobsStub(late).GetJob(jobs_pb2.GetJobRequest(id=job.id), timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert not pending.done()
            locker.rollback()
        assert pending.result(timeout=30).status == jobs_pb2.JOB_STATUS_CANCELLED
    assert server.process.wait(timeout=30) == 0
    assert "service stopped" in server.log.read_text()


def _lock_waiters(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                sa.text(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'"
                )
            ).scalar_one()
        )


# Tracing on; the exporter's endpoint answers nothing, which only costs the exports.
@pytest.mark.parametrize(
    "server", [{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}], indirect=True
)
def test_the_callers_trace_continues_into_the_job(server: Server, engine: sa.Engine) -> None:
    trace_id = uuid.uuid4().hex
    caller = (("traceparent", f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"),)
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        payload = struct_pb2.Struct()
        payload.update({})
        job = (
            jobs_pb2_grpc.JobsStub(channel)
            .Enqueue(jobs_pb2.EnqueueRequest(type="echo", payload=payload), metadata=caller)
            .job
        )
    table = JobRow.__table__
    with engine.connect() as connection:
        stored = connection.execute(
            sa.select(table.c.traceparent).where(table.c.id == uuid.UUID(job.id))
        ).scalar_one()
    assert stored is not None and stored.split("-")[1] == trace_id
