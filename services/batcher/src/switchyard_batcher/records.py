"""Turning consumed events into sink records, refusing what can never be stored."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from switchyard.db.models.logs import HEALTH_STATUSES, LOG_LEVELS
from switchyard.db.models.targets import CHECK_STATUSES
from switchyard.errors import PermanentError
from switchyard.kafka.consumer import ConsumedEvent
from switchyard.sinks import Record

LOG_TYPES = frozenset({"log.received"})
HEALTH_TYPES = frozenset({"health.reported"})
CHECK_TYPES = frozenset({"target.checked"})  # the health-checker's probes: target_checks
_LEVELS = frozenset(LOG_LEVELS)
_STATUSES = frozenset(HEALTH_STATUSES)
_CHECK_STATUSES = frozenset(CHECK_STATUSES)


def to_records(events: Sequence[ConsumedEvent]) -> list[Record]:
    """One record per event; :class:`PermanentError` names the first one that is bad.

    The runner hands the events over undecoded (``RunnerOptions(decode=False)``): each
    value is parsed here once, and the rows are built from the dict, never from a
    :class:`CloudEvent`. A value that is not a CloudEvent is refused like a bad row.
    """
    records = []
    for event in events:
        try:
            records.append(to_record(event))
        except (KeyError, TypeError, ValueError) as exc:  # orjson.JSONDecodeError too
            raise PermanentError(
                f"record {event.topic}[{event.partition}]@{event.offset} cannot be stored: {exc!r}"
            ) from None
    return records


def to_record(consumed: ConsumedEvent) -> Record:
    envelope: dict[str, Any] = orjson.loads(consumed.value)
    event_type = envelope["type"]
    data: dict[str, Any] = envelope["data"]
    if event_type in LOG_TYPES:
        # The hot path: the API validated every field, so only what the tables cannot
        # catch is checked here. A value PostgreSQL refuses (an id that is not a UUID, a
        # bad timestamp) fails the batch; the runner then isolates and dead-letters it.
        if not (data["service"] and data["message"]) or data["level"] not in _LEVELS:
            raise ValueError("service, message or level is missing or wrong")
        return Record(
            "log",
            _string(envelope["id"]),
            data,
            consumed.topic,
            consumed.partition,
            consumed.offset,
            consumed.value,
        )
    if event_type in CHECK_TYPES:
        return Record(
            "check",
            str(uuid.UUID(envelope["id"])),
            _check(data, envelope.get("time")),
            consumed.topic,
            consumed.partition,
            consumed.offset,
            consumed.value,
        )
    if event_type in HEALTH_TYPES:
        event_id = str(uuid.UUID(envelope["id"]))  # other producers than the API write here
        return Record(
            "health",
            event_id,
            _health(data, envelope.get("time")),
            consumed.topic,
            consumed.partition,
            consumed.offset,
            consumed.value,
        )
    raise ValueError(f"unknown event type {event_type!r}")


def _health(data: dict[str, Any], event_time: str | None) -> dict[str, Any]:
    """``health.reported`` from the API."""
    # The envelope's time stands in for missing timestamps; validated only if used.
    sent_at = event_time or datetime.now(UTC).isoformat()
    details = data.get("details")
    probe = {k: data[k] for k in ("target_id", "url", "status_code", "error") if k in data}
    if probe:
        details = {**(details or {}), **probe}
    latency = data.get("latency_ms")
    target_id = data.get("target_id")
    return {
        "service": _string(data.get("service") or data.get("name") or f"target-{target_id}"),
        "status": _member(data["status"], _STATUSES),
        "latency_ms": float(latency) if latency is not None else None,
        "details": details,
        "target_id": int(target_id) if target_id is not None else None,
        "timestamp": _rfc3339(data.get("timestamp") or data.get("checked_at") or sent_at),
        "received_at": _rfc3339(data.get("received_at") or sent_at),
    }


def _check(data: dict[str, Any], event_time: str | None) -> dict[str, Any]:
    """A probe's result (``target.checked``) as its ``target_checks`` row."""
    latency, code, error = data.get("latency_ms"), data.get("status_code"), data.get("error")
    if error is not None and not isinstance(error, str):
        raise ValueError(f"error must be text, got {error!r}")
    return {
        "target_id": _integer(data["target_id"]),
        "status": _member(data["status"], _CHECK_STATUSES),
        "latency_ms": float(latency) if latency is not None else None,
        "status_code": _integer(code) if code is not None else None,
        "error": error,
        "checked_at": _rfc3339(data.get("checked_at") or event_time),
    }


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    return value


def _string(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value


def _member(value: Any, allowed: frozenset[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{value!r} is not one of {sorted(allowed)}")
    return str(value)


def _rfc3339(value: Any) -> str:
    parsed = datetime.fromisoformat(_string(value))
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no UTC offset")
    return str(value)
