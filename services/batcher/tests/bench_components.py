"""Micro-benchmarks of the batcher's per-record work (run by ``switchyard bench batcher``).

Not collected by the test suite (the file name does not start with ``test_``).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from switchyard.events import CloudEvent, event_headers
from switchyard.kafka.consumer import decode
from switchyard.sinks import Record
from switchyard.sinks.jsonl import JsonLinesSink
from switchyard.sinks.postgres import copy_rows
from switchyard_batcher.records import to_records

RECORDS = 2_000
NOW = "2026-01-01T00:00:00.123456Z"


class _Message:
    def __init__(self, event: CloudEvent, offset: int) -> None:
        self._value, self._headers = event.to_json(), event_headers(event, "r")
        self._offset = offset

    def value(self) -> bytes:
        return self._value

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers

    def topic(self) -> str:
        return "logs"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return b"svc"

    def timestamp(self) -> tuple[int, int]:
        return 1, 0


@pytest.fixture(scope="module")
def messages() -> list[_Message]:
    return [
        _Message(
            CloudEvent(
                type="log.received",
                source="/switchyard/api",
                id=str(uuid.uuid4()),
                data={
                    "service": f"svc-{n % 24}",
                    "level": "info",
                    "message": f"load event {n}",
                    "timestamp": NOW,
                    "attributes": {"n": n},
                    "received_at": NOW,
                },
            ),
            n,
        )
        for n in range(RECORDS)
    ]


def test_decode_cloudevent(benchmark: Any, messages: list[_Message]) -> None:
    """What other consumers pay: the envelope parsed into a CloudEvent, headers decoded."""
    benchmark.extra_info["records"] = RECORDS
    benchmark(lambda: [decode(m).headers for m in messages])  # type: ignore[arg-type]


def test_decode(benchmark: Any, messages: list[_Message]) -> None:
    """What the batcher's runner does per record (``RunnerOptions(decode=False)``)."""
    benchmark.extra_info["records"] = RECORDS
    benchmark(lambda: [decode(m, parse=False) for m in messages])  # type: ignore[arg-type]


def test_to_records(benchmark: Any, messages: list[_Message]) -> None:
    """Parsing each value once and building its row."""
    events = [decode(m, parse=False) for m in messages]  # type: ignore[arg-type]
    benchmark.extra_info["records"] = RECORDS
    benchmark(to_records, events)


def test_copy_rows(benchmark: Any, messages: list[_Message]) -> None:
    records = to_records([decode(m, parse=False) for m in messages])  # type: ignore[arg-type]
    benchmark.extra_info["records"] = RECORDS
    benchmark(copy_rows, "log", records)


def test_jsonl_write(benchmark: Any, messages: list[_Message], tmp_path: Path) -> None:
    records = to_records([decode(m, parse=False) for m in messages])  # type: ignore[arg-type]
    sink = JsonLinesSink(tmp_path, 1 << 30, 3600)
    rounds = iter(range(1_000_000))

    def fresh() -> tuple[tuple[list[Record]], dict[str, Any]]:
        # New offsets each round, or the sink skips them; made outside the timing.
        base = next(rounds) * RECORDS
        return ([r._replace(offset=base + r.offset) for r in records],), {}

    benchmark.extra_info["records"] = RECORDS
    benchmark.pedantic(sink.write_batch, setup=fresh, rounds=30, warmup_rounds=2)
    sink.close()
