"""gRPC and HTTP judge the same request the same way, and share idempotency keys."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest
from flask.testing import FlaskClient
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from switchyard_api.grpc.gen import jobs_pb2, jobs_pb2_grpc

pytestmark = pytest.mark.integration

BODIES: list[dict[str, Any]] = [
    {"type": "echo", "payload": {"a": 1, "b": [1.5, "x", None]}},
    {"type": "sleep", "payload": {"seconds": 2}, "max_attempts": 2, "timeout_seconds": 10},
    {"type": "echo", "payload": {}, "run_at": "2030-01-01T00:00:00Z"},
    {"type": "nope", "payload": {}},
    {"type": "fail"},
    {"type": "fail", "payload": {"times": -1, "x": 1}, "max_attempts": 0, "timeout_seconds": 0},
    {"type": "sleep", "payload": {"seconds": 90_000}},
    {"type": "sleep", "payload": {"seconds": "5"}},
    {"type": "http.request", "payload": {"url": "ftp://example.com/x", "method": "BREW"}},
    {"type": "logs.retention", "payload": {"days": 0, "service": ""}},
    {"type": "echo", "payload": {}, "run_at": "2030-01-01T00:00:00Z", "delay_seconds": 5},
    {"type": "echo", "payload": {}, "idempotency_key": "", "delay_seconds": -1},
    {"type": "echo", "payload": {}, "max_attempts": 101, "timeout_seconds": 86_401},
]


def _grpc_fields(error: grpc.RpcError) -> set[str]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    fields: set[str] = set()
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        assert detail.Unpack(bad_request)
        fields |= {v.field for v in bad_request.field_violations}
    return fields


@pytest.mark.parametrize("body", BODIES, ids=lambda b: f"{b['type']}-{sorted(b)}")
def test_same_verdict_and_same_fields(
    body: dict[str, Any], client: FlaskClient, stub: jobs_pb2_grpc.JobsStub
) -> None:
    http = client.post("/jobs", json=body)
    request = json_format.ParseDict(body, jobs_pb2.EnqueueRequest())
    if http.status_code == 202:
        response = stub.Enqueue(request)
        assert response.created
        stored = client.get(f"/jobs/{response.job.id}").get_json()
        assert stored["payload"] == body["payload"]
        assert stored["status"] == http.get_json()["status"]
        return
    assert http.status_code == 400, http.get_json()
    with pytest.raises(grpc.RpcError) as caught:
        stub.Enqueue(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    http_fields = {error["field"] for error in http.get_json()["errors"]}
    assert _grpc_fields(caught.value) == http_fields


def test_one_idempotency_key_across_both(client: FlaskClient, stub: jobs_pb2_grpc.JobsStub) -> None:
    key = f"both-{uuid.uuid4()}"
    over_http = client.post(
        "/jobs", json={"type": "echo", "payload": {}, "idempotency_key": key}
    ).get_json()
    request = json_format.ParseDict(
        {"type": "echo", "payload": {"other": 1}, "idempotency_key": key},
        jobs_pb2.EnqueueRequest(),
    )
    response = stub.Enqueue(request)
    assert response.created is False and response.job.id == over_http["id"]
    again = client.post(
        "/jobs", json={"type": "sleep", "payload": {"seconds": 1}, "idempotency_key": key}
    )
    assert again.status_code == 200 and again.get_json()["id"] == over_http["id"]
