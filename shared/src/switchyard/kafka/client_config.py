"""librdkafka settings shared by every producer and consumer."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from switchyard.config import Settings


def common_config(settings: Settings, role: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "client.id": f"{settings.service_name}-{role}-{socket.gethostname()}-{os.getpid()}",
        # librdkafka logs every reconnect attempt; ours go through structlog, at warning.
        "logger": logging.getLogger(f"kafka.{role}"),
        "log_level": 4,
    }
