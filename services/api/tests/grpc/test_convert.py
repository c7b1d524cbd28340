"""Messages to the HTTP body and back: no servers."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import struct_pb2, timestamp_pb2

from switchyard.jobs.records import STATUSES, Job
from switchyard_api.grpc import convert
from switchyard_api.grpc.gen import jobs_pb2


def _struct(data: dict[str, object]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(data)
    return struct


def test_unset_fields_are_left_out_of_the_body() -> None:
    body, problems = convert.enqueue_body(jobs_pb2.EnqueueRequest())
    assert body == {} and problems == []
    # Set to the zero value is still set (proto3 `optional` and message fields).
    request = jobs_pb2.EnqueueRequest(
        type="echo", payload={}, max_attempts=0, delay_seconds=0, idempotency_key=""
    )
    body, _ = convert.enqueue_body(request)
    assert body == {
        "type": "echo",
        "payload": {},
        "max_attempts": 0,
        "delay_seconds": 0.0,
        "idempotency_key": "",
    }


def test_whole_numbers_become_integers_as_in_json() -> None:
    payload = {
        "n": 2,
        "x": 2.5,
        "big": 1e30,
        "edge": float(2**53),
        "neg": -7,
        "deep": [1, {"k": 3}],
    }
    body, _ = convert.enqueue_body(jobs_pb2.EnqueueRequest(type="echo", payload=_struct(payload)))
    assert body["payload"] == {
        "n": 2,
        "x": 2.5,
        "big": 1e30,
        "edge": 2**53,
        "neg": -7,
        "deep": [1, {"k": 3}],
    }
    assert type(body["payload"]["n"]) is int and type(body["payload"]["big"]) is float
    assert type(body["payload"]["deep"][1]["k"]) is int


def test_run_at_is_rfc3339_in_utc_to_the_microsecond() -> None:
    stamp = timestamp_pb2.Timestamp(seconds=1_800_000_000, nanos=123_456_789)
    body, problems = convert.enqueue_body(jobs_pb2.EnqueueRequest(run_at=stamp))
    assert problems == []
    assert body["run_at"] == "2027-01-15T08:00:00.123456Z"


def test_a_timestamp_no_datetime_holds_is_named() -> None:
    for stamp in (
        timestamp_pb2.Timestamp(seconds=10**13),
        timestamp_pb2.Timestamp(seconds=-(10**13)),
        timestamp_pb2.Timestamp(seconds=0, nanos=-1),
    ):
        body, problems = convert.enqueue_body(jobs_pb2.EnqueueRequest(run_at=stamp))
        assert "run_at" not in body
        assert [p["field"] for p in problems] == ["run_at"]


def _job(**changes: object) -> Job:
    values: dict[str, object] = {
        "id": "6f1c1a52-3f0e-4a5e-9a0c-1d2e3f4a5b6c",
        "seq": 1,
        "type": "echo",
        "payload": {"a": [1, "b", None, True, {"c": 1.5}]},
        "status": "queued",
        "attempts": 0,
        "max_attempts": 5,
        "timeout_seconds": 300,
        "last_error": None,
        "result": None,
        "run_at": datetime(2026, 1, 1, tzinfo=UTC),
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        "started_at": None,
        "finished_at": None,
        "idempotency_key": None,
        "schedule_name": None,
    }
    values.update(changes)
    return Job(**values)  # type: ignore[arg-type]


def test_job_message_leaves_nulls_unset() -> None:
    message = convert.job_message(_job())
    assert message.status == jobs_pb2.JOB_STATUS_QUEUED
    assert convert.from_struct(message.payload) == {"a": [1, "b", None, True, {"c": 1.5}]}
    for name in ("result", "started_at", "finished_at", "last_error", "idempotency_key"):
        assert not message.HasField(name), name
    assert message.run_at.ToDatetime(tzinfo=UTC) == datetime(2026, 1, 1, tzinfo=UTC)


def test_job_message_carries_every_status_and_any_result() -> None:
    for status in STATUSES:
        message = convert.job_message(_job(status=status))
        assert jobs_pb2.JobStatus.Name(message.status) == f"JOB_STATUS_{status.upper()}"
    for result in ({"ok": 1}, [1, 2], "text", 3, False):
        message = convert.job_message(
            _job(status="succeeded", result=result, last_error="earlier failure")
        )
        assert convert.from_value(message.result) == result
        assert message.last_error == "earlier failure"


def test_a_stored_oddity_does_not_fail_the_read() -> None:
    message = convert.job_message(_job(status="no-such-status", payload=["not", "an", "object"]))
    assert message.status == jobs_pb2.JOB_STATUS_UNSPECIFIED
    assert not message.HasField("payload")
