"""``switchyard.jobs.v1.Jobs``: Enqueue, GetJob, CancelJob, on the store HTTP uses.

Guarantee: the same request is judged the same over gRPC and HTTP. Enqueue turns the
message into the ``POST /jobs`` body and checks it with the HTTP body model
(``switchyard_api.jobs.schemas``), so the rules are written once; the store's unique
``idempotency_key`` makes a repeat return the existing job (``created = false``) however
many calls race; CancelJob needs the admin token, as ``POST /jobs/{id}/cancel`` does.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass

import grpc
import sqlalchemy as sa

from switchyard.config import Settings
from switchyard.jobs import store
from switchyard.jobs.records import JobTopics
from switchyard_api.grpc import convert
from switchyard_api.grpc.gen import jobs_pb2
from switchyard_api.http.problems import Problem
from switchyard_api.jobs.bodies import JobCreate, parse_body

SERVICE_NAME = jobs_pb2.DESCRIPTOR.services_by_name["Jobs"].full_name


class RpcError(Exception):
    """Answer the call with ``code``; ``violations`` name the bad fields."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        violations: list[convert.Violation] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.violations = violations or []


@dataclass(frozen=True)
class Call:
    """What a call brings besides its message."""

    request_id: str
    metadata: Mapping[str, str]


def invalid(violations: list[convert.Violation]) -> RpcError:
    listed = "; ".join(f"{v['field']}: {v['message']}" for v in violations)
    return RpcError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"{len(violations)} field(s) are invalid: {listed}",
        violations,
    )


class JobsService:
    def __init__(self, settings: Settings, engine: sa.Engine, topics: JobTopics) -> None:
        self.settings = settings
        self.engine = engine
        self.topics = topics

    def enqueue(self, request: jobs_pb2.EnqueueRequest, call: Call) -> jobs_pb2.EnqueueResponse:
        body, violations = convert.enqueue_body(request)
        try:
            parsed = parse_body(JobCreate, body)
        except Problem as problem:
            violations = [dict(error) for error in problem.errors or []] + violations
            if not violations:  # not a field's fault; never expected from a dict body
                violations = [{"field": "body", "message": problem.detail}]
            raise invalid(violations) from None
        if violations:
            raise invalid(violations)
        new = parsed.new_job(self.settings.jobs)
        job, created = store.enqueue(self.engine, new, self.topics, call.request_id)
        return jobs_pb2.EnqueueResponse(job=convert.job_message(job), created=created)

    def get_job(self, request: jobs_pb2.GetJobRequest, call: Call) -> jobs_pb2.Job:
        job = store.get_job(self.engine, _job_id(request.id))
        if job is None:
            raise _not_found(request.id)
        return convert.job_message(job)

    def cancel_job(self, request: jobs_pb2.CancelJobRequest, call: Call) -> jobs_pb2.Job:
        self._require_admin(call)
        try:
            job = store.cancel(self.engine, _job_id(request.id))
        except store.JobStateConflict as exc:
            raise RpcError(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from None
        if job is None:
            raise _not_found(request.id)
        return convert.job_message(job)

    def _require_admin(self, call: Call) -> None:
        token = self.settings.admin_token
        scheme, _, given = call.metadata.get("authorization", "").partition(" ")
        if (
            token is None
            or scheme.lower() != "bearer"
            or not hmac.compare_digest(given.strip().encode(), token.get_secret_value().encode())
        ):
            raise RpcError(
                grpc.StatusCode.UNAUTHENTICATED,
                "CancelJob needs `authorization: Bearer <ADMIN_TOKEN>` metadata",
            )


def _job_id(value: str) -> str:
    if not value:
        raise invalid([{"field": "id", "message": "field required"}])
    return value


def _not_found(job_id: str) -> RpcError:
    # As GET /jobs/{id}: an id that is not a UUID names no job either.
    return RpcError(grpc.StatusCode.NOT_FOUND, f"there is no job with id {job_id!r}")
