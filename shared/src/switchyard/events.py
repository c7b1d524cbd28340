"""The CloudEvents 1.0 envelope every Switchyard event travels in.

Structured mode: the Kafka value is the JSON envelope. The request id, the trace context
and the event type are also copied to Kafka headers, so consumers and tools can route and
correlate without parsing the value.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/cloudevents+json"
REQUEST_ID_HEADER = "x-request-id"
TYPE_HEADER = "ce_type"
ID_HEADER = "ce_id"


class InvalidEvent(ValueError):
    """The bytes are not a CloudEvents envelope Switchyard can read."""


@dataclass(frozen=True, slots=True)
class CloudEvent:
    type: str
    source: str
    data: Any
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    subject: str | None = None
    datacontenttype: str = "application/json"

    def to_dict(self) -> dict[str, Any]:
        return envelope(
            self.id,
            self.source,
            self.type,
            self.time.isoformat().replace("+00:00", "Z"),
            self.data,
            subject=self.subject,
            datacontenttype=self.datacontenttype,
        )

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_UTC_Z)

    @classmethod
    def from_json(cls, raw: bytes | str) -> CloudEvent:
        try:
            envelope = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidEvent(f"value is not JSON: {exc}") from None
        if not isinstance(envelope, dict):
            raise InvalidEvent("value is not a JSON object")
        missing = [k for k in ("specversion", "id", "source", "type") if not envelope.get(k)]
        if missing:
            raise InvalidEvent(f"envelope lacks {', '.join(missing)}")
        if envelope["specversion"] != SPEC_VERSION:
            raise InvalidEvent(f"unsupported specversion {envelope['specversion']!r}")
        try:
            time = (
                datetime.fromisoformat(envelope["time"])
                if envelope.get("time")
                else (datetime.now(UTC))
            )
        except (TypeError, ValueError):
            raise InvalidEvent(f"time {envelope.get('time')!r} is not RFC 3339") from None
        return cls(
            type=str(envelope["type"]),
            source=str(envelope["source"]),
            data=envelope.get("data"),
            id=str(envelope["id"]),
            time=time,
            subject=envelope.get("subject"),
            datacontenttype=envelope.get("datacontenttype", "application/json"),
        )


def envelope(
    event_id: str,
    source: str,
    event_type: str,
    time: str,
    data: Any,
    *,
    subject: str | None = None,
    datacontenttype: str = "application/json",
) -> dict[str, Any]:
    """The envelope as a dict; hot paths call this directly instead of building a
    :class:`CloudEvent` (and parsing its time) for every event."""
    fields = {
        "specversion": SPEC_VERSION,
        "id": event_id,
        "source": source,
        "type": event_type,
        "time": time,
        "datacontenttype": datacontenttype,
        "data": data,
    }
    if subject is not None:
        fields["subject"] = subject
    return fields


Headers = Sequence[tuple[str, str | bytes | None]] | Mapping[str, str | bytes | None]


def event_headers(
    event: CloudEvent, request_id: str | None, extra: Mapping[str, str] | None = None
) -> list[tuple[str, bytes]]:
    """Kafka headers for ``event``: content type, id, type, request id, trace context."""
    headers = [
        ("content-type", CONTENT_TYPE.encode()),
        (ID_HEADER, event.id.encode()),
        (TYPE_HEADER, event.type.encode()),
    ]
    if request_id:
        headers.append((REQUEST_ID_HEADER, request_id.encode()))
    for name, value in (extra or {}).items():
        headers.append((name, value.encode()))
    return headers


def headers_to_dict(headers: Headers | None) -> dict[str, str]:
    """Kafka headers as text; the last value wins when a name repeats."""
    return {
        name: (value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value))
        for name, value in (headers.items() if isinstance(headers, Mapping) else headers or [])
        if value is not None
    }
