"""The JSON Lines sink, the circuit breaker and event decoding, without servers."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import orjson
import pytest

from switchyard.errors import PermanentError
from switchyard.events import CloudEvent
from switchyard.kafka.consumer import ConsumedEvent
from switchyard.sinks import Record
from switchyard.sinks.jsonl import JsonLinesSink
from switchyard.sinks.postgres import copy_rows
from switchyard_batcher.breaker import CircuitBreaker, CircuitOpen
from switchyard_batcher.records import to_records


def _records(offsets: range, partition: int = 0) -> list[Record]:
    return [
        Record(
            "log",
            str(uuid.uuid4()),
            {"service": "s", "message": f"m{o}"},
            "logs",
            partition,
            o,
            b'{"data": {"n": %d}}' % o,
        )
        for o in offsets
    ]


def _lines(directory: Path) -> list[dict[str, object]]:
    return [
        orjson.loads(line)
        for path in sorted(directory.rglob("*.jsonl"))
        for line in path.read_bytes().splitlines()
    ]


def test_jsonl_skips_what_it_already_wrote_even_after_a_restart(tmp_path: Path) -> None:
    sink = JsonLinesSink(tmp_path, max_bytes=1 << 20, max_age_seconds=60)
    first = _records(range(0, 5))
    sink.write_batch(first)
    sink.write_batch(first)  # the same batch retried after another sink failed
    sink.close()
    restarted = JsonLinesSink(tmp_path, max_bytes=1 << 20, max_age_seconds=60)
    restarted.write_batch([*first[3:], *_records(range(5, 8))])  # redelivered after a crash
    restarted.close()
    assert [line["offset"] for line in _lines(tmp_path)] == list(range(8))
    assert all(
        line["id"] and line["event"]["data"]["n"] == line["offset"]  # type: ignore[index]
        for line in _lines(tmp_path)
    )


def test_jsonl_cuts_a_line_left_half_written_by_a_crash(tmp_path: Path) -> None:
    sink = JsonLinesSink(tmp_path, max_bytes=1 << 20, max_age_seconds=60)
    sink.write_batch(_records(range(0, 3)))
    sink.close()
    path = next(tmp_path.rglob("*.jsonl"))
    path.write_bytes(path.read_bytes() + b'{"id": "half')
    restarted = JsonLinesSink(tmp_path, max_bytes=1 << 20, max_age_seconds=60)
    restarted.write_batch(_records(range(2, 5)))
    restarted.close()
    assert [line["offset"] for line in _lines(tmp_path)] == [0, 1, 2, 3, 4]


def test_jsonl_rotates_by_size_and_by_age(tmp_path: Path) -> None:
    by_size = JsonLinesSink(tmp_path / "size", max_bytes=200, max_age_seconds=60)
    for offset in range(6):
        by_size.write_batch(_records(range(offset, offset + 1)))
    by_size.close()
    assert len(list((tmp_path / "size").rglob("*.jsonl"))) >= 3
    by_age = JsonLinesSink(tmp_path / "age", max_bytes=1 << 20, max_age_seconds=0.001)
    for offset in range(3):
        by_age.write_batch(_records(range(offset, offset + 1)))
        time.sleep(0.01)
    by_age.close()
    files = sorted((tmp_path / "age").rglob("*.jsonl"))
    assert [f.name.rsplit("-", 1)[1] for f in files] == [f"{o:020d}.jsonl" for o in range(3)]


def test_partitions_get_their_own_files(tmp_path: Path) -> None:
    sink = JsonLinesSink(tmp_path, max_bytes=1 << 20, max_age_seconds=60)
    sink.write_batch([*_records(range(0, 2), partition=0), *_records(range(0, 2), partition=1)])
    sink.close()
    assert len(list(tmp_path.rglob("*.jsonl"))) == 2
    assert len(_lines(tmp_path)) == 4


def test_breaker_opens_then_lets_one_trial_through() -> None:
    now = [0.0]
    breaker = CircuitBreaker("pg", threshold=2, reset_seconds=5, clock=lambda: now[0])
    breaker.before_call()
    breaker.failed()
    breaker.before_call()
    breaker.failed()
    with pytest.raises(CircuitOpen):
        breaker.before_call()
    now[0] = 5.0
    breaker.before_call()  # the trial
    with pytest.raises(CircuitOpen):
        breaker.before_call()  # only one at a time
    breaker.failed()
    now[0] = 9.0
    with pytest.raises(CircuitOpen):
        breaker.before_call()
    now[0] = 10.0
    breaker.before_call()
    breaker.succeeded()
    assert breaker.state == "closed"
    breaker.before_call()


def _consumed(event_type: str, data: object, event_id: str | None = None) -> ConsumedEvent:
    event = CloudEvent(type=event_type, source="/t", data=data, id=event_id or str(uuid.uuid4()))
    return ConsumedEvent("logs", 0, 0, b"k", event.to_json(), {}, 0, event)


def test_events_that_can_never_be_stored_are_permanent_errors() -> None:
    now = "2026-01-01T00:00:00Z"
    good = {"service": "s", "message": "m", "level": "info", "timestamp": now, "received_at": now}
    assert to_records([_consumed("log.received", good)])[0].fields == good
    for data in [{**good, "level": "loud"}, {**good, "service": ""}, {"message": "m"}, [1]]:
        with pytest.raises(PermanentError):
            to_records([_consumed("log.received", data)])
    ping = {"service": "s", "status": "up", "timestamp": now}
    for data, event_id in [
        ({**ping, "status": "fine"}, None),
        ({**ping, "timestamp": "x"}, None),
        ({**ping, "timestamp": "2026-01-01T00:00:00"}, None),
        (ping, "not-a-uuid"),
    ]:
        with pytest.raises(PermanentError):
            to_records([_consumed("health.reported", data, event_id)])
    with pytest.raises(PermanentError):
        to_records([_consumed("something.else", good)])


def test_health_checker_probes_map_onto_target_checks() -> None:
    probe = {
        "target_id": 7,
        "name": "shop",
        "status": "down",
        "latency_ms": 12,
        "status_code": 503,
        "error": "unexpected_status: 503",
        "checked_at": "2026-01-01T00:00:00Z",
    }
    record = to_records([_consumed("target.checked", probe)])[0]
    assert record.kind == "check"
    assert record.fields == {
        "target_id": 7,
        "status": "down",
        "latency_ms": 12.0,
        "status_code": 503,
        "error": "unexpected_status: 503",
        "checked_at": "2026-01-01T00:00:00Z",
    }
    row = copy_rows("check", [record]).decode().rstrip("\n").split("\t")
    assert row[1:] == ["7", "down", "12.0", "503", "unexpected_status: 503", "2026-01-01T00:00:00Z"]
    for bad in (
        {**probe, "status": "unknown"},
        {**probe, "target_id": "7"},
        {**probe, "status_code": True},
        {**probe, "checked_at": "2026-01-01T00:00:00"},
        {**probe, "error": 5},
    ):
        with pytest.raises(PermanentError):
            to_records([_consumed("target.checked", bad)])


def test_copy_rows_escape_what_copy_text_format_would_misread() -> None:
    record = Record(
        "log",
        "8c3c3c4e-1f7a-4c39-9d4b-5d8f8a0b8d31",
        {
            "service": "s",
            "level": "info",
            "message": "tab\there\nnew\\line\x00",
            "timestamp": "2026-01-01T00:00:00Z",
            "attributes": {"k": "v\n\u0000"},
            "received_at": "2026-01-01T00:00:00Z",
        },
        "logs",
        0,
        0,
        b"{}",
    )
    row = copy_rows("log", [record]).decode().rstrip("\n").split("\t")
    assert row[3] == "tab\\there\\nnew\\\\line"
    assert row[5] == '{"k":"v\\\\n\\\\ufffd"}'
