"""``POST /logs``, ``POST /health`` (to Kafka) and ``GET /logs``, ``GET /health`` (from
PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from functools import cached_property
from typing import Any

from flask import Blueprint, Response, current_app
from werkzeug.exceptions import RequestEntityTooLarge

from switchyard import metrics
from switchyard.kafka.topics import HEALTH, LOGS, topic_name
from switchyard_api.http.pagination import PageQuery, decode_cursor, page
from switchyard_api.http.problems import Problem, invalid_fields
from switchyard_api.http.request_context import current_request_id
from switchyard_api.http.responses import json_response
from switchyard_api.http.validation import parse_query
from switchyard_api.ingest.parsing import BodyParser
from switchyard_api.ingest.publisher import Ingestor, received_now
from switchyard_api.ingest.schemas import HealthIn, HealthQuery, LogIn, LogQuery
from switchyard_api.ingest.store import IngestStore, Position
from switchyard_api.services import ApiServices

ingest = Blueprint("ingest", __name__)


class _Parts:
    def __init__(self, services: ApiServices) -> None:
        settings = services.settings
        limit = settings.ingest.max_events_per_request
        self.logs = BodyParser(LogIn, limit)
        self.pings = BodyParser(HealthIn, limit)
        self.logs_topic = topic_name(settings, LOGS)
        self.health_topic = topic_name(settings, HEALTH)
        self._services = services

    # Built on first use: a process that only reads never connects to Kafka, and back.
    @cached_property
    def ingestor(self) -> Ingestor:
        return Ingestor(self._services.producer, self._services.settings)

    @cached_property
    def store(self) -> IngestStore:
        return IngestStore(self._services.engine)


def _parts() -> _Parts:
    services: ApiServices = current_app.extensions["switchyard"]
    return services.part("ingest", _Parts)


def _publish(kind: str, parser: BodyParser[Any], topic: str, event_type: str,
             data: Callable[[Any, str], dict[str, Any]]) -> Response:
    """Parse the body whole, publish every item (or none), answer 202 with the count."""
    metrics.ingest_requests_total.labels(kind).inc()
    parts = _parts()
    items = _parsed(parser, kind)
    received = received_now()
    parts.ingestor.publish(kind, topic, event_type,
                           [(item.id, data(item, received)) for item in items],
                           current_request_id(), received)
    return json_response({"accepted": len(items)}, 202)


def _log_data(item: LogIn, received: str) -> dict[str, Any]:
    return {
        "service": item.service, "level": item.level, "message": item.message,
        "timestamp": item.timestamp.isoformat() if item.timestamp else received,
        "attributes": item.attributes, "received_at": received,
    }


def _ping_data(item: HealthIn, received: str) -> dict[str, Any]:
    return {
        "service": item.service, "status": item.status, "latency_ms": item.latency_ms,
        "timestamp": item.timestamp.isoformat() if item.timestamp else received,
        "details": item.details, "received_at": received,
    }


@ingest.post("/logs")
def post_logs() -> Response:
    parts = _parts()
    return _publish("logs", parts.logs, parts.logs_topic, "log.received", _log_data)


@ingest.post("/health")
def post_health() -> Response:
    parts = _parts()
    return _publish("health", parts.pings, parts.health_topic, "health.reported", _ping_data)


def _parsed(parser: BodyParser[Any], kind: str) -> list[Any]:
    try:
        return parser.parse()
    except Problem as problem:
        metrics.ingest_errors_total.labels(kind, "invalid" if problem.status == 400
                                           else "too_large").inc()
        raise
    except RequestEntityTooLarge:
        metrics.ingest_errors_total.labels(kind, "too_large").inc()
        raise


@ingest.get("/logs")
def get_logs() -> Response:
    query = parse_query(LogQuery)
    paging = parse_query(PageQuery)
    items = _parts().store.logs(service=query.service, level=query.level, since=query.since,
                                until=query.until, q=query.q,
                                after=_position(paging.cursor), limit=paging.limit + 1)
    return _page(items, paging.limit)


@ingest.get("/health")
def get_health() -> Response:
    query = parse_query(HealthQuery)
    paging = parse_query(PageQuery)
    items = _parts().store.pings(service=query.service, since=query.since, until=query.until,
                                 after=_position(paging.cursor), limit=paging.limit + 1)
    return _page(items, paging.limit)


def _position(cursor: str | None) -> Position | None:
    position = decode_cursor(cursor)
    if position is None:
        return None
    try:
        return datetime.fromisoformat(position["t"]), uuid.UUID(position["id"])
    except (KeyError, TypeError, ValueError):
        raise invalid_fields([{"field": "cursor",
                               "message": "not a cursor this API issued"}]) from None


def _page(items: list[dict[str, Any]], limit: int) -> Response:
    more = len(items) > limit
    items = items[:limit]
    last = items[-1] if more else None
    return json_response(page(items, limit, {"t": last["timestamp"].isoformat(),
                                             "id": str(last["id"])} if last else None))

