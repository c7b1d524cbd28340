"""The yardsticks of ``switchyard bench ingest``: the least code keeping each API contract.

Served by gunicorn with the API's own settings (``switchyard_api.gunicorn_conf``: same
workers, threads, keep-alive), on the same servers, so a ratio to these measures only
what our code adds. Each keeps the guarantee of the endpoint it stands for, nothing more:

* ``GET /healthz``: a bare Flask view answering a constant (no request id, metrics, logs);
* ``POST /logs``: the body parsed, each item's fields checked as ``LogIn`` checks them,
  each event produced as the CloudEvent the batcher reads, to the same topic, with
  acks=all and idempotence, and 202 only once every delivery report came back (whole
  request refused on the first bad field or failed delivery).
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from confluent_kafka import KafkaError, Message, Producer
from flask import Flask, Response, request

from switchyard.config import get_settings
from switchyard.kafka.client_config import common_config
from switchyard.kafka.topics import LOGS, topic_name

LEVELS = frozenset(("debug", "info", "warning", "error", "critical"))
FIELDS = frozenset(("service", "message", "level", "timestamp", "attributes", "id"))
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})")
INT64 = (-(2**63), 2**63 - 1)


def _text(value: Any, longest: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= longest and "\x00" not in value


def _storable(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" not in value
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int):
        return INT64[0] <= value <= INT64[1]
    if isinstance(value, float):
        return value == value and abs(value) != float("inf")
    if isinstance(value, list):
        return all(_storable(item) for item in value)
    return all("\x00" not in key and _storable(item) for key, item in value.items())


def _valid(item: Any) -> bool:
    if not isinstance(item, dict) or not FIELDS.issuperset(item):
        return False
    timestamp, attributes, item_id = item.get("timestamp"), item.get("attributes"), item.get("id")
    try:
        return (
            _text(item.get("service"), 200)
            and _text(item.get("message"), 65_536)
            and item.get("level", "info") in LEVELS
            and (timestamp is None or (isinstance(timestamp, str) and _in_range(timestamp)))
            and (attributes is None or (isinstance(attributes, dict) and _storable(attributes)))
            and (item_id is None or (isinstance(item_id, str) and bool(uuid.UUID(item_id))))
        )
    except ValueError:
        return False


def _in_range(timestamp: str) -> bool:
    if not RFC3339.fullmatch(timestamp):
        return False
    datetime.fromisoformat(timestamp.replace("z", "Z")).astimezone(UTC)  # ValueError: refused
    return True


def minimum_app() -> Flask:
    settings = get_settings()
    topic = topic_name(settings, LOGS)
    producer = Producer(
        {
            **common_config(settings, "bench-minimum"),
            "acks": "all",
            "enable.idempotence": True,
            # The API producer's tuning, so the yardstick differs only in Python code.
            "linger.ms": settings.kafka.producer_linger_ms,
            "compression.type": "lz4",
        }
    )

    def poll() -> None:
        while True:
            producer.poll(0.1)

    threading.Thread(target=poll, daemon=True).start()
    app = Flask("minimum")

    @app.get("/healthz")
    def healthz() -> Response:
        return Response(b'{"status":"ok"}', mimetype="application/json")

    @app.get("/readyz")
    def readyz() -> Response:
        return Response(b'{"status":"ready"}', mimetype="application/json")

    @app.post("/logs")
    def logs() -> Response:
        try:
            body = orjson.loads(request.get_data())
        except orjson.JSONDecodeError:
            return Response(b'{"title":"Malformed JSON"}', status=400)
        items = body if isinstance(body, list) else [body]
        if not items or not all(_valid(item) for item in items):
            return Response(b'{"title":"Invalid fields"}', status=400)
        received = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        remaining, failed, done = [len(items)], [], threading.Event()
        lock = threading.Lock()

        def delivered(error: KafkaError | None, _: Message) -> None:
            with lock:
                if error is not None:
                    failed.append(error)
                remaining[0] -= 1
                if remaining[0] == 0:
                    done.set()

        for item in items:
            event_id = item.get("id") or str(uuid.UUID(bytes=os.urandom(16), version=4))
            data = {
                "service": item["service"],
                "level": item.get("level", "info"),
                "message": item["message"],
                "timestamp": item.get("timestamp") or received,
                "attributes": item.get("attributes") or {},
                "received_at": received,
            }
            event = {
                "specversion": "1.0",
                "id": event_id,
                "source": "/switchyard/api",
                "type": "log.received",
                "time": received,
                "datacontenttype": "application/json",
                "data": data,
            }
            producer.produce(
                topic,
                orjson.dumps(event),
                item["service"].encode(),
                headers=[("ce_id", event_id.encode()), ("ce_type", b"log.received")],
                on_delivery=delivered,
            )
        if not done.wait(settings.kafka.delivery_timeout_ms / 1000 + 5) or failed:
            return Response(b'{"title":"Kafka did not acknowledge"}', status=503)
        return Response(
            orjson.dumps({"accepted": len(items)}), status=202, mimetype="application/json"
        )

    return app
