"""Pluggable sinks: where the batcher writes batches of records.

A sink is one small module with a class that has ``name``, ``write_batch(records)`` and
``close()`` (the :class:`Sink` protocol), plus one line in :data:`REGISTRY`. Every sink
must be idempotent per record (keyed by ``Record.id`` or by Kafka position), because a
batch is retried after a failure and redelivered after a crash.
"""

from switchyard.sinks.base import REGISTRY, Record, Sink, build_sinks

__all__ = ["REGISTRY", "Record", "Sink", "build_sinks"]
