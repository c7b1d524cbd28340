"""``POST /logs``, ``POST /health`` (to Kafka) and ``GET /logs``, ``GET /health`` (from
PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from flask import Blueprint, current_app
from werkzeug.exceptions import RequestEntityTooLarge

from switchyard import metrics
from switchyard.kafka.topics import HEALTH, LOGS, topic_name
from switchyard_api.http.contract import Body, Out, Reply, endpoint
from switchyard_api.http.pagination import cut_page
from switchyard_api.http.problems import Problem
from switchyard_api.http.request_context import current_request_id
from switchyard_api.ingest.parsing import BodyParser
from switchyard_api.ingest.publisher import Ingestor, received_now
from switchyard_api.ingest.schemas import (
    Accepted,
    HealthBody,
    HealthIn,
    HealthPage,
    HealthPing,
    HealthQuery,
    LogEntry,
    LogIn,
    LogPage,
    LogQuery,
    LogsBody,
)
from switchyard_api.ingest.store import IngestStore, Position
from switchyard_api.services import ApiServices

ingest = Blueprint("ingest", __name__)
TAGS = ("ingest",)
KINDS = ("logs", "health")


class _Parts:
    def __init__(self, services: ApiServices) -> None:
        settings = services.settings
        limit = settings.ingest.max_events_per_request
        self.logs = BodyParser(LogIn, limit)
        self.pings = BodyParser(HealthIn, limit)
        self.logs_topic = topic_name(settings, LOGS)
        self.health_topic = topic_name(settings, HEALTH)
        # Looked up once: ``labels()`` takes a lock and builds a key on every call.
        self.requests = {kind: metrics.ingest_requests_total.labels(kind) for kind in KINDS}
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


def _publish(
    kind: str,
    parser: BodyParser[Any],
    topic: str,
    event_type: str,
    data: Callable[[Any, str], dict[str, Any]],
) -> Reply:
    """Parse the body whole, publish every item (or none), answer 202 with the count."""
    parts = _parts()
    parts.requests[kind].inc()
    items = _parsed(parser, kind)
    received = received_now()
    parts.ingestor.publish(
        kind,
        topic,
        event_type,
        [(item.id, data(item, received)) for item in items],
        current_request_id(),
        received,
    )
    return Reply(Accepted(accepted=len(items)), 202)


def _log_data(item: LogIn, received: str) -> dict[str, Any]:
    return {
        "service": item.service,
        "level": item.level,
        "message": item.message,
        "timestamp": item.timestamp.isoformat() if item.timestamp else received,
        "attributes": item.attributes,
        "received_at": received,
    }


def _ping_data(item: HealthIn, received: str) -> dict[str, Any]:
    return {
        "service": item.service,
        "status": item.status,
        "latency_ms": item.latency_ms,
        "timestamp": item.timestamp.isoformat() if item.timestamp else received,
        "details": item.details,
        "received_at": received,
    }


def _post(kind: str, model: str, event_type: str, body: Any) -> dict[str, Any]:
    """One declaration for both POST endpoints: they differ only in the item type."""
    return {
        "summary": f"Ingest {kind}: one object, an array, or NDJSON; each item becomes a "
        f"`{event_type}` event on Kafka",
        "description": "202 only after Kafka acknowledged every event of the request "
        "(acks=all); a request is accepted whole or refused whole. Invalid "
        "fields are named with the item's index, e.g. `[3].level` (for NDJSON "
        "the line's 0-based index).",
        "tags": TAGS,
        "body": Body(
            body,
            parse=False,
            other_media={
                "application/x-ndjson": {
                    "schema": {"type": "string", "description": f"one {model} per line"}
                }
            },
        ),
        "responses": {202: Out("every event acknowledged by Kafka", Accepted)},
        "problems": {
            413: "body over the limit, or too many items",
            429: "ingest buffer full; nothing was published; see Retry-After",
            503: "Kafka did not acknowledge; retry (items with an `id` are stored once)",
        },
    }


@endpoint(ingest, "POST", "/logs", **_post("log events", "LogIn", "log.received", LogsBody))
def post_logs() -> Reply:
    parts = _parts()
    return _publish("logs", parts.logs, parts.logs_topic, "log.received", _log_data)


@endpoint(
    ingest, "POST", "/health", **_post("health pings", "HealthIn", "health.reported", HealthBody)
)
def post_health() -> Reply:
    parts = _parts()
    return _publish("health", parts.pings, parts.health_topic, "health.reported", _ping_data)


def _parsed(parser: BodyParser[Any], kind: str) -> list[Any]:
    try:
        return parser.parse()
    except Problem as problem:
        metrics.ingest_errors_total.labels(
            kind, "invalid" if problem.status == 400 else "too_large"
        ).inc()
        raise
    except RequestEntityTooLarge:
        metrics.ingest_errors_total.labels(kind, "too_large").inc()
        raise


@endpoint(
    ingest,
    "GET",
    "/logs",
    summary="Stored log events, newest first (by timestamp)",
    tags=TAGS,
    query=LogQuery,
    responses={200: Out("a page", LogPage)},
)
def get_logs(query: LogQuery) -> LogPage:
    items = _parts().store.logs(
        service=query.service,
        level=query.level,
        since=query.since,
        until=query.until,
        q=query.q,
        after=_position(query.cursor),
        limit=query.limit + 1,
    )
    rows, cursor = cut_page(items, query.limit, _time_cursor)
    return LogPage(items=[LogEntry.model_validate(row) for row in rows], next_cursor=cursor)


@endpoint(
    ingest,
    "GET",
    "/health",
    summary="Stored health pings, newest first (by timestamp)",
    tags=TAGS,
    query=HealthQuery,
    responses={200: Out("a page", HealthPage)},
)
def get_health(query: HealthQuery) -> HealthPage:
    items = _parts().store.pings(
        service=query.service,
        since=query.since,
        until=query.until,
        after=_position(query.cursor),
        limit=query.limit + 1,
    )
    rows, cursor = cut_page(items, query.limit, _time_cursor)
    return HealthPage(items=[HealthPing.model_validate(row) for row in rows], next_cursor=cursor)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _position(cursor: str | None) -> Position | None:
    """Every cursor the pattern allows is a position; one past either end of time stays
    there (so its page is empty or starts at the newest)."""
    if cursor is None:
        return None
    micros, _, item_id = cursor.partition("_")
    try:
        moment = _EPOCH + timedelta(microseconds=int(micros))
    except OverflowError:
        moment = (
            datetime.max.replace(tzinfo=UTC)
            if int(micros) > 0
            else datetime.min.replace(tzinfo=UTC)
        )
    return moment, uuid.UUID(hex=item_id)


def _time_cursor(row: dict[str, Any]) -> str:
    return f"{(row['timestamp'] - _EPOCH) // _MICROSECOND}_{row['id'].hex}"
