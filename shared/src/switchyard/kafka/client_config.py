"""librdkafka settings shared by every producer, consumer and admin client.

Guarantee: every Kafka client of the platform is built on :func:`common_config`, so the
bootstrap address and the connection's security (TLS, SASL) come from one place, the
``KAFKA__*`` settings, and a secure cluster is reached by all of them or by none.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from switchyard.config import KafkaSettings, Settings


def security_config(kafka: KafkaSettings) -> dict[str, Any]:
    """The librdkafka keys for ``KAFKA__SECURITY_PROTOCOL`` and its companions."""
    config: dict[str, Any] = {"security.protocol": kafka.security_protocol.lower()}
    if kafka.security_protocol.startswith("SASL_"):
        password = kafka.sasl_password
        config.update(
            {
                "sasl.mechanism": kafka.sasl_mechanism,
                "sasl.username": kafka.sasl_username,
                "sasl.password": password.get_secret_value() if password else "",
            }
        )
    if kafka.security_protocol.endswith("SSL") and kafka.ssl_ca_location is not None:
        config["ssl.ca.location"] = str(kafka.ssl_ca_location)
    return config


def common_config(settings: Settings, role: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "client.id": f"{settings.service_name}-{role}-{socket.gethostname()}-{os.getpid()}",
        **security_config(settings.kafka),
        # librdkafka logs every reconnect attempt; ours go through structlog, at warning.
        "logger": logging.getLogger(f"kafka.{role}"),
        "log_level": 4,
    }
