"""Between protobuf messages and what the HTTP API reads and writes.

Guarantee: an ``EnqueueRequest`` becomes exactly the JSON body a client would POST to
``/jobs`` (a field unset is a field left out), so the HTTP body model judges it; a stored
job becomes a ``Job`` message whatever its JSON holds (a read never fails on stored data).

A ``Struct`` carries every number as a double: a number with no fractional part (and
within 2^53, where doubles are exact) becomes an integer, as it would have been in JSON.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from google.protobuf import struct_pb2, timestamp_pb2

from switchyard.jobs.records import STATUSES, Job
from switchyard_api.grpc.gen import jobs_pb2

_EXACT = 2**53
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STATUS = {
    status: cast(jobs_pb2.JobStatus, jobs_pb2.JobStatus.Value(f"JOB_STATUS_{status.upper()}"))
    for status in STATUSES
}
Violation = dict[str, str]  # {"field": ..., "message": ...}, as in HTTP's problem details


def from_value(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = value.number_value
        if number.is_integer() and abs(number) <= _EXACT:
            return int(number)
        return number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return from_struct(value.struct_value)
    if kind == "list_value":
        return [from_value(item) for item in value.list_value.values]
    return None  # null_value, or a Value with nothing set


def from_struct(struct: struct_pb2.Struct) -> dict[str, Any]:
    return {key: from_value(item) for key, item in struct.fields.items()}


def to_value(target: struct_pb2.Value, data: Any) -> None:
    """Fill ``target`` with JSON ``data`` (as stored in jsonb)."""
    if data is None:
        target.null_value = struct_pb2.NULL_VALUE
    elif isinstance(data, bool):
        target.bool_value = data
    elif isinstance(data, int | float):
        target.number_value = float(data)
    elif isinstance(data, str):
        target.string_value = data
    elif isinstance(data, dict):
        to_struct(target.struct_value, data)
    elif isinstance(data, list | tuple):
        target.list_value.SetInParent()
        for item in data:
            to_value(target.list_value.values.add(), item)
    else:  # jsonb holds nothing else; say what it was rather than fail the read
        target.string_value = str(data)


def to_struct(target: struct_pb2.Struct, data: dict[str, Any]) -> None:
    target.SetInParent()
    for key, item in data.items():
        to_value(target.fields[str(key)], item)


def _rfc3339(stamp: timestamp_pb2.Timestamp) -> str:
    # Microseconds, as HTTP takes at most 6 fractional digits; nanoseconds are dropped.
    moment = _EPOCH + timedelta(seconds=stamp.seconds, microseconds=stamp.nanos // 1000)
    return moment.isoformat().replace("+00:00", "Z")


def enqueue_body(request: jobs_pb2.EnqueueRequest) -> tuple[dict[str, Any], list[Violation]]:
    """The ``POST /jobs`` body this request means, and what cannot even be put in one."""
    body: dict[str, Any] = {}
    problems: list[Violation] = []
    if request.type:
        body["type"] = request.type
    if request.HasField("payload"):
        body["payload"] = from_struct(request.payload)
    for name in ("max_attempts", "delay_seconds", "idempotency_key", "timeout_seconds"):
        if request.HasField(name):
            body[name] = getattr(request, name)
    if request.HasField("run_at"):
        stamp = request.run_at
        if not 0 <= stamp.nanos < 1_000_000_000:
            problems.append({"field": "run_at", "message": "nanos must be 0 to 999999999"})
        else:
            try:
                body["run_at"] = _rfc3339(stamp)
            except OverflowError:
                problems.append(
                    {"field": "run_at", "message": "must fall between years 1 and 9999 in UTC"}
                )
    return body, problems


def _stamp(target: timestamp_pb2.Timestamp, moment: datetime | None) -> None:
    if moment is not None:
        target.FromDatetime(moment)


def job_message(job: Job) -> jobs_pb2.Job:
    message = jobs_pb2.Job(
        id=job.id,
        type=job.type,
        status=_STATUS.get(job.status, jobs_pb2.JOB_STATUS_UNSPECIFIED),
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        timeout_seconds=job.timeout_seconds,
    )
    if isinstance(job.payload, dict):
        to_struct(message.payload, job.payload)
    if job.result is not None:
        to_value(message.result, job.result)
    for name in ("last_error", "idempotency_key", "schedule_name"):
        value = getattr(job, name)
        if value is not None:
            setattr(message, name, value)
    _stamp(message.run_at, job.run_at)
    _stamp(message.created_at, job.created_at)
    _stamp(message.started_at, job.started_at)
    _stamp(message.finished_at, job.finished_at)
    return message
