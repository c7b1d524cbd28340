"""Which failures are the infrastructure's (retry, never dead-letter) and which are the data's."""

from __future__ import annotations

import redis
import sqlalchemy.exc
from confluent_kafka import KafkaException


class PermanentError(Exception):
    """Raised by a handler for a record that can never succeed: dead-letter it now."""


class TransientError(Exception):
    """Raised by a handler when a dependency failed: retry the same record later."""


_TRANSIENT = (
    TransientError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    redis.ConnectionError,
    redis.TimeoutError,
    KafkaException,
    ConnectionError,
    TimeoutError,
)


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` says a dependency is down rather than the record is bad."""
    from switchyard.kafka.producer import PublishError

    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (*_TRANSIENT, PublishError))
