"""Stand-ins for unit tests that must not need a broker.

:class:`FakeMessage` answers what the consumer runner asks of a consumed
``confluent_kafka.Message``; a test's fake consumer hands these out.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FakeMessage:
    """A record consumed from ``topic_name[partition_no]`` at ``offset_no``."""

    topic_name: str
    partition_no: int
    offset_no: int
    body: bytes
    key_bytes: bytes = b"k"
    header_list: list[tuple[str, bytes]] = field(default_factory=list)
    timestamp_ms: int = 0

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self.topic_name

    def partition(self) -> int:
        return self.partition_no

    def offset(self) -> int:
        return self.offset_no

    def key(self) -> bytes:
        return self.key_bytes

    def value(self) -> bytes:
        return self.body

    def headers(self) -> list[tuple[str, bytes]]:
        return self.header_list

    def timestamp(self) -> tuple[int, int]:
        return 1, self.timestamp_ms
