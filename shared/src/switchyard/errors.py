"""Which failures are the infrastructure's (retry, never dead-letter) and which are the data's.

Guarantee: :func:`is_transient` is the one place that decides "a dependency is down";
a transient error never sends a record to a dead-letter topic. What a handler may raise,
and what the default consumer policy
(:class:`~switchyard.kafka.policy.RetryInPlaceThenDeadLetter`) does with it::

    Exception
    ├── TransientError ............... a dependency is down: retry the batch in place,
    │   │                              partitions paused, for as long as it takes
    │   └── CircuitOpen (batcher) .... a sink's breaker is open
    ├── PermanentError ............... this record can never succeed: dead-letter now
    ├── ValueError
    │   └── InvalidEvent (events) .... not a CloudEvent: dead-letter now, no retry
    ├── RuntimeError
    │   └── PublishError (kafka) ..... Kafka did not confirm a publish: transient
    │       └── ProducerBusy ......... the producer's buffer is full: transient
    ├── also transient: ConnectionError, TimeoutError, KafkaException, SQLAlchemy
    │   OperationalError / InterfaceError / TimeoutError (or an invalidated
    │   connection), redis ConnectionError / TimeoutError, and PostgreSQL's
    │   "relation does not exist" (UndefinedTable: the migrations have not run yet)
    └── anything else ................ a bug or bad data: the record is isolated,
                                       retried alone ``max_attempts`` times, then
                                       dead-lettered
"""

from __future__ import annotations

import psycopg2.errors
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
    # A process that started before the migration Job finished: the table will come.
    psycopg2.errors.UndefinedTable,
)


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` says a dependency is down rather than the record is bad."""
    from switchyard.kafka.producer import PublishError

    if isinstance(exc, sqlalchemy.exc.DBAPIError) and (
        exc.connection_invalidated or isinstance(exc.orig, psycopg2.errors.UndefinedTable)
    ):
        return True
    return isinstance(exc, (*_TRANSIENT, PublishError))
