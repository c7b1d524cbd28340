"""JSON Lines sink: one file per (topic, partition), rotated by size and by age.

Files are ``<dir>/<topic>/<topic>-<partition>-<first offset>.jsonl``; every line carries
the event id, its Kafka partition and offset, and the CloudEvents envelope (``event``).
A partition's offsets only grow, so the sink skips records at or below the last offset
already in its files: a batch retried after a PostgreSQL failure, or redelivered after a
crash, is not written twice. A line cut by a crash is truncated away before appending.
Each batch is fsynced before the batcher commits its offsets.

Two batcher instances writing one directory would each keep their own watermark, so give
each instance its own directory; readers that merge directories dedupe by ``id``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, get_args

import orjson

from switchyard.config import Settings
from switchyard.errors import TransientError
from switchyard.sinks.base import Kind, Record

SUFFIX = ".jsonl"


@dataclass
class _PartitionFile:
    lock: threading.Lock
    watermark: int = -1  # highest offset already written
    handle: IO[bytes] | None = None
    size: int = 0
    opened_at: float = 0.0
    dirty: bool = False


class JsonLinesSink:
    name = "jsonl"

    def __init__(self, directory: Path, max_bytes: int, max_age_seconds: float) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.max_age_seconds = max_age_seconds
        self._files: dict[tuple[str, int], _PartitionFile] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> JsonLinesSink:
        batcher = settings.batcher
        return cls(batcher.jsonl_dir, batcher.jsonl_max_bytes, batcher.jsonl_max_age_seconds)

    def write_batch(self, records: Sequence[Record]) -> None:
        by_partition: dict[tuple[str, int], list[Record]] = {}
        for record in records:
            by_partition.setdefault((record.topic, record.partition), []).append(record)
        for (topic, partition), group in by_partition.items():
            try:
                self._write_partition(topic, partition, group)
            except OSError as exc:  # a full or missing disk: retry, never dead-letter
                raise TransientError(f"JSON Lines sink: {exc}") from exc

    def _write_partition(self, topic: str, partition: int, records: list[Record]) -> None:
        state = self._state(topic, partition)
        with state.lock:
            if state.dirty:  # an earlier write failed midway: trust only what is on disk
                state.watermark = self._recover(topic, partition)
                state.dirty = False
            fresh = sorted(
                (r for r in records if r.offset > state.watermark), key=lambda r: r.offset
            )
            if not fresh:
                return
            try:
                self._append(state, topic, partition, fresh)
            except OSError:
                state.dirty = True
                if state.handle is not None:
                    with contextlib.suppress(OSError):
                        state.handle.close()
                    state.handle = None
                raise

    def _append(
        self, state: _PartitionFile, topic: str, partition: int, records: list[Record]
    ) -> None:
        if state.handle is not None and (
            state.size >= self.max_bytes
            or time.monotonic() - state.opened_at >= self.max_age_seconds
        ):
            state.handle.close()
            state.handle = None
        if state.handle is None:
            path = self._path(topic, partition, records[0].offset)
            state.handle = open(path, "ab")  # noqa: SIM115 (kept open across batches)
            state.size = path.stat().st_size
            state.opened_at = time.monotonic()
        data = _lines(topic, partition, records)
        state.handle.write(data)
        state.handle.flush()
        os.fsync(state.handle.fileno())
        state.size += len(data)
        state.watermark = records[-1].offset

    def _state(self, topic: str, partition: int) -> _PartitionFile:
        with self._lock:
            state = self._files.get((topic, partition))
            if state is None:
                state = _PartitionFile(threading.Lock())
                state.watermark = self._recover(topic, partition)
                self._files[(topic, partition)] = state
            return state

    def _path(self, topic: str, partition: int, first_offset: int) -> Path:
        folder = self.directory / topic
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{topic}-{partition}-{first_offset:020d}{SUFFIX}"

    def _recover(self, topic: str, partition: int) -> int:
        """The last offset in this partition's newest file, after cutting a partial line."""
        folder = self.directory / topic
        if not folder.is_dir():
            return -1
        files = sorted(folder.glob(f"{topic}-{partition}-*{SUFFIX}"))
        for path in reversed(files):
            offset = _last_offset(path)
            if offset is not None:
                return offset
        return -1

    def close(self) -> None:
        with self._lock:
            for state in self._files.values():
                with state.lock:
                    if state.handle is not None:
                        state.handle.close()
                        state.handle = None


def _lines(topic: str, partition: int, records: list[Record]) -> bytes:
    # The envelope is already JSON: spliced in, not parsed and dumped again; the parts
    # shared by the partition's records are serialised once.
    position = b',"topic":%b,"partition":%d,"offset":' % (orjson.dumps(topic), partition)
    dumps = orjson.dumps
    return b"".join(
        [
            b'{"id":%b,"kind":%b%b%d,"event":%b}\n'
            % (dumps(r.id), _KINDS[r.kind], position, r.offset, r.value)
            for r in records
        ]
    )


_KINDS = {kind: orjson.dumps(kind) for kind in get_args(Kind)}


def _last_offset(path: Path) -> int | None:
    with open(path, "r+b") as handle:
        size = handle.seek(0, os.SEEK_END)
        tail = 1 << 16
        while True:
            start = max(0, size - tail)
            handle.seek(start)
            chunk = handle.read()
            complete = chunk.rfind(b"\n") + 1
            # Enough when the chunk holds the whole last line (a newline before it).
            if start == 0 or chunk.rfind(b"\n", 0, max(0, complete - 1)) >= 0:
                break
            tail *= 4
        if complete < len(chunk):  # a crash cut the last line: drop it
            handle.truncate(start + complete)
    lines = chunk[:complete].splitlines()
    if not lines:
        return None
    return int(orjson.loads(lines[-1])["offset"])
