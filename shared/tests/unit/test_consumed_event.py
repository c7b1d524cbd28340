"""ConsumedEvent decodes its envelope and headers only when read (the lean runner mode)."""

from __future__ import annotations

import pytest

from switchyard.events import CloudEvent, InvalidEvent, event_headers
from switchyard.kafka.consumer import ConsumedEvent


def test_the_event_and_headers_are_decoded_on_first_access_and_kept() -> None:
    event = CloudEvent(type="t.x", source="/t", data={"v": 1})
    consumed = ConsumedEvent("logs", 0, 7, b"k", event.to_json(), event_headers(event, "req-1"), 0)
    assert consumed.request_id == "req-1"
    assert consumed.event.id == event.id and consumed.event.data == {"v": 1}
    assert consumed.event is consumed.event
    assert consumed.headers is consumed.headers


def test_a_value_that_is_not_a_cloud_event_raises_only_when_read() -> None:
    consumed = ConsumedEvent("logs", 0, 7, None, b"\xff nope", None, 0)
    assert consumed.headers == {}
    with pytest.raises(InvalidEvent):
        _ = consumed.event
