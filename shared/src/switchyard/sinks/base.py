"""The sink interface (the seed's ``WriteBatch``/``Close``) and the registry of sinks."""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple, Protocol

from switchyard.config import Settings

Kind = Literal["log", "health", "check"]


class Record(NamedTuple):
    """One event as sinks see it: its id, its row, and where it came from in Kafka.

    A named tuple, not a frozen dataclass: one is built per event, and that is a third of
    the cost of building a frozen dataclass.
    """

    kind: Kind
    id: str
    # Column name -> JSON-compatible value; timestamps are RFC 3339 strings.
    fields: Mapping[str, Any]
    topic: str
    partition: int
    offset: int
    # The CloudEvents envelope as it was on Kafka, for sinks that keep whole events.
    value: bytes


class Sink(Protocol):
    name: str

    def write_batch(self, records: Sequence[Record]) -> None:
        """Store every record durably, or raise; a retry of the same records is harmless."""

    def close(self) -> None:
        """Release files and connections."""


# name -> "module:factory"; the factory takes Settings. Imported only when configured.
REGISTRY: dict[str, str] = {
    "postgres": "switchyard.sinks.postgres:PostgresSink.from_settings",
    "jsonl": "switchyard.sinks.jsonl:JsonLinesSink.from_settings",
}


def build_sinks(settings: Settings, names: Sequence[str] | None = None) -> list[Sink]:
    sinks: list[Sink] = []
    for name in names or settings.batcher.sinks:
        module_name, _, attribute = REGISTRY[name].partition(":")
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
        sinks.append(target(settings))
    return sinks
