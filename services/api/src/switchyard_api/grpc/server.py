"""The gRPC server process: ``switchyard-api grpc [--port 50051]``.

Guarantee: every call ends with a deliberate status, never an unhandled exception: bad
input is INVALID_ARGUMENT naming each field (message and ``google.rpc.BadRequest``),
PostgreSQL down is UNAVAILABLE, a bug is INTERNAL with the request id to find its log
line. Each call has a request id (``x-request-id`` metadata, or a new one) that is sent
back in the response headers, bound to every log line and stored with the job. Bounded:
a thread pool of ``API__THREADS``, at most four times that many calls admitted (the rest
RESOURCE_EXHAUSTED at once), messages of at most ``API__MAX_BODY_BYTES``. SIGTERM: the
health service says NOT_SERVING, new calls are refused, calls in flight get ``grace``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent import futures
from typing import Any, TypeVar, cast

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status

from switchyard import metrics, tracing
from switchyard.errors import is_transient
from switchyard.kafka.topics import job_topics
from switchyard.logging import bind_context, clear_context, get_logger
from switchyard.service import WorkerContext, run_worker
from switchyard_api.grpc.gen import jobs_pb2
from switchyard_api.grpc.service import SERVICE_NAME, Call, JobsService, RpcError

# The HTTP API's rule for a client's request id, so both accept the same ones.
from switchyard_api.http.request_context import ACCEPTABLE_REQUEST_ID

log = get_logger(__name__)
REQUEST_ID = "x-request-id"
READINESS_EVERY_SECONDS = 2.0
TRACE_METADATA = ("traceparent", "tracestate")
Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)


def _status(error: RpcError) -> grpc.Status:
    details = []
    if error.violations:
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v["field"], description=v["message"]
                )
                for v in error.violations
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(bad_request)
        details.append(packed)
    code = getattr(code_pb2, error.code.name)
    status = status_pb2.Status(code=code, message=error.message, details=details)
    return cast(grpc.Status, rpc_status.to_status(status))


def _unary(
    method: str,
    handler: Callable[[Req, Call], Resp],
    request_type: type[Req],
) -> grpc.RpcMethodHandler[Any, Any]:
    route = f"/{SERVICE_NAME}/{method}"

    def behaviour(request: Req, context: grpc.ServicerContext) -> Resp:
        metadata = {
            key: value for key, value in context.invocation_metadata() if isinstance(value, str)
        }
        given = metadata.get(REQUEST_ID, "")
        request_id = given if ACCEPTABLE_REQUEST_ID.match(given) else uuid.uuid4().hex
        clear_context()
        bind_context(request_id=request_id, rpc=route)
        context.send_initial_metadata(((REQUEST_ID, request_id),))
        started = time.perf_counter()
        try:
            # A caller's W3C trace context comes as metadata: the job's trace continues it.
            parent = {key: metadata[key] for key in TRACE_METADATA if key in metadata}
            with tracing.span(route, parent, rpc_system="grpc"):
                response = handler(request, Call(request_id, metadata))
            failure = None
        except RpcError as error:
            failure = error
        except Exception as exc:
            failure = _unexpected(exc, request_id)
        elapsed = time.perf_counter() - started
        code = failure.code if failure else grpc.StatusCode.OK
        # The HTTP series, so one dashboard shows both: gRPC is an HTTP/2 POST per call.
        metrics.http_requests_total.labels("POST", route, code.name).inc()
        metrics.http_request_duration_seconds.labels("POST", route).observe(elapsed)
        if failure is None:
            return response
        (log.error if code is grpc.StatusCode.INTERNAL else log.info)(
            "call refused",
            code=code.name,
            detail=failure.message[:300],
            duration_ms=round(elapsed * 1000, 2),
        )
        context.abort_with_status(_status(failure))
        raise AssertionError("abort_with_status returns only by raising")

    return grpc.unary_unary_rpc_method_handler(
        behaviour,
        request_deserializer=request_type.FromString,
        response_serializer=lambda message: message.SerializeToString(),
    )


def _unexpected(exc: Exception, request_id: str) -> RpcError:
    if is_transient(exc):
        log.error("PostgreSQL did not answer", error=str(exc)[:300])
        return RpcError(
            grpc.StatusCode.UNAVAILABLE,
            "PostgreSQL did not answer; retry (an Enqueue with the same idempotency_key "
            "cannot store a second job)",
        )
    log.exception("call failed")
    return RpcError(grpc.StatusCode.INTERNAL, f"internal error; request id {request_id}")


def build_server(
    service: JobsService, host: str, port: int, *, threads: int, max_message_bytes: int
) -> tuple[grpc.Server, int, health.HealthServicer]:
    """The server (not started), the port it is bound to, and its health service."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="grpc"),
        maximum_concurrent_rpcs=threads * 4,
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            # Without this, a second server on a taken port binds too and steals calls.
            ("grpc.so_reuseport", 0),
        ],
    )
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "Enqueue": _unary("Enqueue", service.enqueue, jobs_pb2.EnqueueRequest),
        "GetJob": _unary("GetJob", service.get_job, jobs_pb2.GetJobRequest),
        "CancelJob": _unary("CancelJob", service.cancel_job, jobs_pb2.CancelJobRequest),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    checker = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    bound = server.add_insecure_port(address)
    return server, bound, checker


def _set_health(checker: health.HealthServicer, serving: bool) -> None:
    status = (
        health_pb2.HealthCheckResponse.SERVING
        if serving
        else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    for name in ("", SERVICE_NAME):
        checker.set(name, status)


def serve(context: WorkerContext, host: str | None, port: int, grace: float) -> None:
    """Serve until ``context.stop``; then stop taking calls and let the running ones end."""
    settings = context.settings
    service = JobsService(settings, context.engine, job_topics(settings))
    server, bound, checker = build_server(
        service,
        host or settings.api.host,
        port,
        threads=settings.api.threads,
        max_message_bytes=settings.api.max_body_bytes,
    )
    server.start()
    log.info("gRPC serving", host=host or settings.api.host, port=bound, service=SERVICE_NAME)
    try:
        # Every call needs PostgreSQL: the health service follows the readiness check.
        _set_health(checker, context.readiness.report().ready)
        while not context.stop.wait(READINESS_EVERY_SECONDS):
            _set_health(checker, context.readiness.report().ready)
    finally:
        checker.enter_graceful_shutdown()
        # stop() closes the listener at once and returns; calls in flight get ``grace``.
        stopped = server.stop(grace)
        log.info("gRPC stopping", grace_seconds=grace)
        stopped.wait()


def main(host: str | None, port: int | None, grace: float) -> None:
    def loop(context: WorkerContext) -> None:
        serve(context, host, context.settings.api.grpc_port if port is None else port, grace)

    run_worker("api-grpc", loop, needs=("postgres",))
