"""The jobs API over gRPC against real PostgreSQL: a real server, a real client."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import struct_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from switchyard.config import Settings
from switchyard.db.models.jobs import Job as JobRow
from switchyard.jobs import lifecycle
from switchyard_api.grpc import convert
from switchyard_api.grpc.gen import jobs_pb2, jobs_pb2_grpc

pytestmark = pytest.mark.integration
ADMIN = (("authorization", "Bearer test-admin-token-of-the-suite-only-0001"),)
StartServer = Callable[[Settings, sa.Engine], tuple[grpc.Server, str]]


def _struct(data: dict[str, object]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(data)
    return struct


def _echo(**fields: object) -> jobs_pb2.EnqueueRequest:
    return jobs_pb2.EnqueueRequest(
        type="echo", payload=_struct({"hello": "grpc", "n": 3}), **fields
    )  # type: ignore[arg-type]


def _fails(call: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()  # type: ignore[operator]
    return caught.value


def _violations(error: grpc.RpcError) -> dict[str, str]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no google.rpc.Status in the trailers"
    found: dict[str, str] = {}
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        assert detail.Unpack(bad_request)
        found.update({v.field: v.description for v in bad_request.field_violations})
    return found


def test_enqueue_then_get(stub: jobs_pb2_grpc.JobsStub) -> None:
    response, call = stub.Enqueue.with_call(_echo(max_attempts=3, timeout_seconds=60))
    assert response.created is True
    job = response.job
    uuid.UUID(job.id)
    assert job.status == jobs_pb2.JOB_STATUS_QUEUED
    assert (job.max_attempts, job.timeout_seconds, job.attempts) == (3, 60, 0)
    assert dict(call.initial_metadata())["x-request-id"]

    read = stub.GetJob(jobs_pb2.GetJobRequest(id=job.id))
    assert read.id == job.id and read.type == "echo"
    assert convert.from_struct(read.payload) == {"hello": "grpc", "n": 3}
    assert read.status == jobs_pb2.JOB_STATUS_QUEUED
    assert read.created_at.seconds > 0 and read.run_at.seconds > 0
    assert not read.HasField("started_at") and not read.HasField("result")


def test_defaults_are_the_configured_ones(stub: jobs_pb2_grpc.JobsStub, settings: Settings) -> None:
    job = stub.Enqueue(_echo()).job
    assert job.max_attempts == settings.jobs.default_max_attempts
    assert job.timeout_seconds == settings.jobs.default_timeout_seconds


def test_same_idempotency_key_gives_the_same_job(stub: jobs_pb2_grpc.JobsStub) -> None:
    key = f"grpc-{uuid.uuid4()}"
    first = stub.Enqueue(_echo(idempotency_key=key))
    again = stub.Enqueue(
        jobs_pb2.EnqueueRequest(type="sleep", payload=_struct({"seconds": 1}), idempotency_key=key)
    )
    assert first.created is True and again.created is False
    assert again.job.id == first.job.id
    assert again.job.type == "echo", "the existing job, whatever the repeat says"
    assert again.job.idempotency_key == key


def test_request_id_is_taken_echoed_and_stored(
    stub: jobs_pb2_grpc.JobsStub, engine: sa.Engine
) -> None:
    response, call = stub.Enqueue.with_call(_echo(), metadata=(("x-request-id", "rid-grpc-42"),))
    assert dict(call.initial_metadata())["x-request-id"] == "rid-grpc-42"
    table = JobRow.__table__
    with engine.connect() as connection:
        stored = connection.execute(
            sa.select(table.c.request_id).where(table.c.id == uuid.UUID(response.job.id))
        ).scalar_one()
    assert stored == "rid-grpc-42"
    # One the HTTP API would not accept is replaced, as there.
    _, call = stub.Enqueue.with_call(_echo(), metadata=(("x-request-id", "bad id!"),))
    assert dict(call.initial_metadata())["x-request-id"] != "bad id!"


def test_delayed_job_is_scheduled(stub: jobs_pb2_grpc.JobsStub) -> None:
    job = stub.Enqueue(_echo(delay_seconds=3600)).job
    assert job.status == jobs_pb2.JOB_STATUS_SCHEDULED
    assert job.run_at.seconds - job.created_at.seconds >= 3590


def test_unknown_type_names_the_field(stub: jobs_pb2_grpc.JobsStub) -> None:
    error = _fails(
        lambda: stub.Enqueue(jobs_pb2.EnqueueRequest(type="no.such.type", payload=_struct({})))
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "type" in _violations(error)
    assert "type:" in (error.details() or "")


def test_bad_payload_names_each_field(stub: jobs_pb2_grpc.JobsStub) -> None:
    request = jobs_pb2.EnqueueRequest(
        type="fail", payload=_struct({"times": -1, "extra": 1}), max_attempts=0
    )
    error = _fails(lambda: stub.Enqueue(request))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = _violations(error)
    assert {"payload.times", "payload.extra", "max_attempts"} <= set(violations)
    for field in violations:
        assert field in (error.details() or "")


def test_missing_fields_and_run_at_with_delay(stub: jobs_pb2_grpc.JobsStub) -> None:
    error = _fails(lambda: stub.Enqueue(jobs_pb2.EnqueueRequest()))
    assert {"type", "payload"} <= set(_violations(error))

    request = _echo(delay_seconds=5)
    request.run_at.FromSeconds(2_000_000_000)
    error = _fails(lambda: stub.Enqueue(request))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {"run_at", "delay_seconds"} <= set(_violations(error))


def test_payload_http_could_not_store_is_refused(stub: jobs_pb2_grpc.JobsStub) -> None:
    error = _fails(
        lambda: stub.Enqueue(jobs_pb2.EnqueueRequest(type="echo", payload=_struct({"x": "a\x00b"})))
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert any(field.startswith("payload") for field in _violations(error))
    error = _fails(
        lambda: stub.Enqueue(
            jobs_pb2.EnqueueRequest(type="echo", payload=_struct({"x": float("inf")}))
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_cancel_queued_job(stub: jobs_pb2_grpc.JobsStub) -> None:
    job = stub.Enqueue(_echo()).job
    cancelled = stub.CancelJob(jobs_pb2.CancelJobRequest(id=job.id), metadata=ADMIN)
    assert cancelled.status == jobs_pb2.JOB_STATUS_CANCELLED
    assert cancelled.HasField("finished_at")
    assert stub.GetJob(jobs_pb2.GetJobRequest(id=job.id)).status == jobs_pb2.JOB_STATUS_CANCELLED
    # Again: it is no longer cancellable.
    error = _fails(lambda: stub.CancelJob(jobs_pb2.CancelJobRequest(id=job.id), metadata=ADMIN))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_cancel_needs_the_admin_token(stub: jobs_pb2_grpc.JobsStub) -> None:
    job = stub.Enqueue(_echo()).job
    for metadata in (
        (),
        (("authorization", "Bearer wrong"),),
        (("authorization", "test-admin-token-of-the-suite-only-0001"),),
    ):
        error = _fails(
            lambda m=metadata: stub.CancelJob(jobs_pb2.CancelJobRequest(id=job.id), metadata=m)
        )
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert stub.GetJob(jobs_pb2.GetJobRequest(id=job.id)).status == jobs_pb2.JOB_STATUS_QUEUED


def test_cancel_running_job_is_a_failed_precondition(
    stub: jobs_pb2_grpc.JobsStub, engine: sa.Engine
) -> None:
    job = stub.Enqueue(_echo()).job
    (claimed,) = lifecycle.claim(engine, [job.id], "grpc-test", 30.0, {})
    assert claimed.id == job.id
    error = _fails(lambda: stub.CancelJob(jobs_pb2.CancelJobRequest(id=job.id), metadata=ADMIN))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "running" in (error.details() or "")
    assert stub.GetJob(jobs_pb2.GetJobRequest(id=job.id)).status == jobs_pb2.JOB_STATUS_RUNNING


def test_unknown_job_is_not_found(stub: jobs_pb2_grpc.JobsStub) -> None:
    for job_id in (str(uuid.uuid4()), "not-a-uuid"):
        error = _fails(lambda j=job_id: stub.GetJob(jobs_pb2.GetJobRequest(id=j)))
        assert error.code() == grpc.StatusCode.NOT_FOUND
        error = _fails(
            lambda j=job_id: stub.CancelJob(jobs_pb2.CancelJobRequest(id=j), metadata=ADMIN)
        )
        assert error.code() == grpc.StatusCode.NOT_FOUND
    error = _fails(lambda: stub.GetJob(jobs_pb2.GetJobRequest()))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "id" in _violations(error)


def test_message_over_the_body_limit_is_refused(
    stub: jobs_pb2_grpc.JobsStub, settings: Settings
) -> None:
    big = "x" * (settings.api.max_body_bytes + 1)
    error = _fails(lambda: stub.Enqueue(_echo(idempotency_key=big)))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_postgres_down_is_unavailable(settings: Settings, grpc_server_for: StartServer) -> None:
    # A real PostgreSQL URL where nothing listens: the server's database is down.
    with socket_closed_port() as port:
        down = settings.model_copy(
            update={"database_url": f"postgresql://postgres@127.0.0.1:{port}/switchyard"}
        )
        from switchyard.db.engine import create_engine

        engine = create_engine(down)
        server, target = grpc_server_for(down, engine)
        try:
            with grpc.insecure_channel(target) as channel:
                stub = jobs_pb2_grpc.JobsStub(channel)
                for call in (
                    lambda: stub.Enqueue(_echo()),
                    lambda: stub.GetJob(jobs_pb2.GetJobRequest(id=str(uuid.uuid4()))),
                    lambda: stub.CancelJob(
                        jobs_pb2.CancelJobRequest(id=str(uuid.uuid4())), metadata=ADMIN
                    ),
                ):
                    assert _fails(call).code() == grpc.StatusCode.UNAVAILABLE
                # Validation needs no database: still INVALID_ARGUMENT.
                error = _fails(lambda: stub.Enqueue(jobs_pb2.EnqueueRequest(type="nope")))
                assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        finally:
            server.stop(None).wait()
            engine.dispose()


class socket_closed_port:  # noqa: N801 - used as a context manager
    """A port nothing listens on while the block runs (bound, never listening)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return int(self.sock.getsockname()[1])

    def __exit__(self, *_: object) -> None:
        self.sock.close()
