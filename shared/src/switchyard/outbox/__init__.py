"""The transactional outbox: events written with the change, relayed to Kafka after commit."""

from switchyard.outbox.relay import OutboxRelay
from switchyard.outbox.store import add_event

__all__ = ["OutboxRelay", "add_event"]
