"""Consumed records as handlers see them.

Guarantee: a record is decoded at most once, and only as far as it is read. In the lean
mode (``RunnerOptions(decode=False)``) a handler that reads only ``value`` never pays for
a CloudEvent, a datetime or a header dict per record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from confluent_kafka import KafkaError

from switchyard.events import REQUEST_ID_HEADER, CloudEvent, Headers, InvalidEvent, headers_to_dict


class KafkaMessage(Protocol):
    """What the runner reads from a consumed record (``confluent_kafka.Message`` is one)."""

    def error(self) -> KafkaError | None: ...
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> Headers | None: ...
    def timestamp(self) -> tuple[int, int]: ...


class ConsumedEvent:
    """One record as a handler sees it.

    ``event`` (the parsed envelope) and ``headers`` are decoded on first access and kept.
    """

    __slots__ = (
        "_event",
        "_headers",
        "_raw_headers",
        "key",
        "offset",
        "partition",
        "timestamp_ms",
        "topic",
        "value",
    )

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes,
        headers: Headers | None,
        timestamp_ms: int,
        event: CloudEvent | None = None,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.timestamp_ms = timestamp_ms
        self._raw_headers = headers
        self._headers: dict[str, str] | None = None
        self._event = event

    @property
    def event(self) -> CloudEvent:
        """The CloudEvent; raises :class:`InvalidEvent` if the value is not one."""
        if self._event is None:
            self._event = CloudEvent.from_json(self.value)
        return self._event

    @property
    def headers(self) -> dict[str, str]:
        if self._headers is None:
            self._headers = headers_to_dict(self._raw_headers)
        return self._headers

    @property
    def request_id(self) -> str | None:
        return self.headers.get(REQUEST_ID_HEADER)

    def __repr__(self) -> str:
        return f"ConsumedEvent({self.topic}[{self.partition}]@{self.offset})"


BatchHandler = Callable[[list[ConsumedEvent]], None]
"""What a service provides: store/apply a batch, or raise (see :mod:`switchyard.errors`)."""


def position(message: KafkaMessage) -> tuple[str, int, int]:
    """Topic, partition and offset of a consumed record (never None once consumed)."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    if topic is None or partition is None or offset is None:
        raise InvalidEvent("record without a position; it was not consumed from a topic")
    return topic, partition, offset


def decode(message: KafkaMessage, parse: bool = True) -> ConsumedEvent:
    """The record; with ``parse``, its CloudEvent too (:class:`InvalidEvent` if not one)."""
    value = message.value()
    if value is None:
        raise InvalidEvent("record has no value")
    topic, partition, offset = position(message)
    return ConsumedEvent(
        topic,
        partition,
        offset,
        message.key(),
        value,
        message.headers(),
        message.timestamp()[1],
        CloudEvent.from_json(value) if parse else None,
    )


def raw(message: KafkaMessage) -> ConsumedEvent:
    """The record as it is, for dead-lettering one that :func:`decode` refused."""
    topic, partition, offset = position(message)
    return ConsumedEvent(
        topic,
        partition,
        offset,
        message.key(),
        message.value() or b"",
        message.headers(),
        message.timestamp()[1],
    )
