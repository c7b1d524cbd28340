from __future__ import annotations

import pytest

from switchyard.events import CloudEvent, InvalidEvent, event_headers, headers_to_dict


def test_envelope_round_trips() -> None:
    event = CloudEvent(
        type="user.created", source="/switchyard/api", subject="7", data={"id": 7, "name": "Ada"}
    )
    decoded = CloudEvent.from_json(event.to_json())
    assert decoded == event
    envelope = event.to_dict()
    assert envelope["specversion"] == "1.0"
    assert envelope["time"].endswith("Z")
    assert set(envelope) >= {
        "id",
        "source",
        "type",
        "time",
        "specversion",
        "datacontenttype",
        "data",
    }


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1]",
        b'{"specversion":"1.0"}',
        b'{"specversion":"0.3","id":"1","source":"s","type":"t"}',
        b'{"specversion":"1.0","id":"1","source":"s","type":"t","time":"yesterday"}',
    ],
)
def test_bad_envelopes_are_refused(raw: bytes) -> None:
    with pytest.raises(InvalidEvent):
        CloudEvent.from_json(raw)


def test_headers_carry_request_id_and_type() -> None:
    event = CloudEvent(type="log.received", source="s", data={})
    headers = headers_to_dict(event_headers(event, "req-1", {"traceparent": "00-abc"}))
    assert headers["x-request-id"] == "req-1"
    assert headers["ce_type"] == "log.received"
    assert headers["ce_id"] == event.id
    assert headers["traceparent"] == "00-abc"
