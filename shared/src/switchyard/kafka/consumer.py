"""The consumer runner's public surface; import from here.

Guarantee: an offset is committed only after its record was handled, or deliberately
handed elsewhere (dead-lettered), so every record is processed at least once; handlers
are idempotent. The pieces, each in its own module:

* :class:`ConsumerRunner` (:mod:`.runner`): the loop — poll, gather a batch, hand it to
  the failure policy, commit after success; SIGTERM hands over and commits the batch
  being gathered, then leaves the group. :class:`RunnerOptions` sizes batches.
* :class:`FailurePolicy` (:mod:`.policy`): what a failing batch means; the default is
  :class:`RetryInPlaceThenDeadLetter`. A policy sees the runner only as
  :class:`RunnerControls` (:class:`GroupMembership`, :mod:`.membership`).
  :class:`ForwardToRetryTopic` (:mod:`.retry_topics`): retry topics with delay tiers.
* :class:`Middleware` (:mod:`.middleware`): what wraps every handler call —
  :class:`Tracing` and :class:`Metrics` by default.
* :class:`ConsumedEvent` (:mod:`.records`): a record as a handler sees it, decoded lazily.
* :class:`DeadLetters` (:mod:`.deadletter`): ``<topic>.dlq`` with the error in headers.

Which error means what is drawn in :mod:`switchyard.errors`.
"""

from __future__ import annotations

from switchyard.kafka.deadletter import DeadLetters, Publisher, failure_headers
from switchyard.kafka.membership import GroupMembership, KafkaConsumer
from switchyard.kafka.middleware import Metrics, Middleware, Tracing, default_middleware
from switchyard.kafka.policy import (
    FailurePolicy,
    Outcome,
    RetryInPlaceThenDeadLetter,
    RunnerControls,
)
from switchyard.kafka.records import BatchHandler, ConsumedEvent, KafkaMessage, decode
from switchyard.kafka.retry_topics import ForwardToRetryTopic, RetryTier
from switchyard.kafka.runner import ConsumerRunner, RunnerOptions, kafka_consumer

__all__ = [
    "BatchHandler",
    "ConsumedEvent",
    "ConsumerRunner",
    "DeadLetters",
    "FailurePolicy",
    "ForwardToRetryTopic",
    "GroupMembership",
    "KafkaConsumer",
    "KafkaMessage",
    "Metrics",
    "Middleware",
    "Outcome",
    "Publisher",
    "RetryInPlaceThenDeadLetter",
    "RetryTier",
    "RunnerControls",
    "RunnerOptions",
    "Tracing",
    "decode",
    "default_middleware",
    "failure_headers",
    "kafka_consumer",
]
