"""Middleware: what wraps every handler call (tracing, metrics; later time limits).

Guarantee: middleware observes a call, it does not change its outcome. Each one calls
``call_next`` exactly once and lets its exception through, so the failure policy sees
the handler's own error and decides about retries and commits alone.

A middleware is any callable ``(events, call_next) -> None``; :func:`wrap` nests them,
the first given outermost. The runner wraps the handler once and hands the wrapped one
to its failure policy, so every attempt (whole batch, isolated record) is observed.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Protocol

from switchyard import metrics, tracing
from switchyard.kafka.records import BatchHandler, ConsumedEvent
from switchyard.logging import bind_context


class Middleware(Protocol):
    def __call__(self, events: list[ConsumedEvent], call_next: BatchHandler) -> None: ...


def wrap(handler: BatchHandler, middleware: Sequence[Middleware]) -> BatchHandler:
    """``handler`` inside ``middleware`` (the first one outermost)."""
    for layer in reversed(middleware):
        handler = partial(layer, call_next=handler)
    return handler


class Tracing:
    """A span per call; a single record continues its producer's trace and request id."""

    def __call__(self, events: list[ConsumedEvent], call_next: BatchHandler) -> None:
        single = len(events) == 1
        if single:
            bind_context(request_id=events[0].request_id)
        with tracing.span(
            f"consume {events[0].topic}",
            parent_headers=events[0].headers if single else None,
            records=len(events),
        ):
            call_next(events)


class Metrics:
    """Counts records handled successfully, per topic and group.

    One increment per topic and call: per record, this was a lock and a label lookup for
    every event. Dead letters are counted where they are published; lag where offsets
    are committed (:mod:`switchyard.kafka.runner`).
    """

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id

    def __call__(self, events: list[ConsumedEvent], call_next: BatchHandler) -> None:
        call_next(events)
        counts: dict[str, int] = {}
        for event in events:
            counts[event.topic] = counts.get(event.topic, 0) + 1
        for topic, count in counts.items():
            metrics.events_consumed_total.labels(topic, self.group_id, "ok").inc(count)


def default_middleware(group_id: str) -> list[Middleware]:
    """What every runner uses unless told otherwise: tracing outside, metrics inside."""
    return [Tracing(), Metrics(group_id)]
