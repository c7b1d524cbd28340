"""The logs and health part of the OpenAPI document."""

from __future__ import annotations

from typing import Any

from switchyard_api.ingest.schemas import Accepted, HealthIn, HealthOut, LogIn, LogOut
from switchyard_api.openapi_parts import (
    PAGE_PARAMETERS,
    json_content,
    page_of,
    problem_response,
    ref,
    schema_of,
)

_TIME = {"type": "string", "format": "date-time"}


def _post(kind: str, model: str, event_type: str) -> dict[str, Any]:
    one_or_many = {"oneOf": [ref(model), {"type": "array", "items": ref(model),
                                          "minItems": 1}]}
    return {
        "summary": f"Ingest {kind}: one object, an array, or NDJSON; each item becomes a "
                   f"`{event_type}` event on Kafka",
        "description": "202 only after Kafka acknowledged every event of the request "
                       "(acks=all); a request is accepted whole or refused whole. Invalid "
                       "fields are named with the item's index, e.g. `[3].level` (for NDJSON "
                       "the line's 0-based index).",
        "tags": ["ingest"],
        "requestBody": {"required": True, "content": {
            **json_content(one_or_many),
            "application/x-ndjson": {"schema": {"type": "string",
                                                "description": f"one {model} per line"}},
        }},
        "responses": {
            "202": {"description": "every event acknowledged by Kafka",
                    "content": json_content(ref("Accepted"))},
            "400": problem_response("malformed JSON or invalid fields"),
            "413": problem_response("body over the limit, or too many items"),
            "429": problem_response("ingest buffer full; nothing was published; see "
                                    "Retry-After"),
            "503": problem_response("Kafka did not acknowledge; retry (items with an `id` "
                                    "are stored once)"),
        },
    }


def _get(kind: str, model: str, filters: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "summary": f"Stored {kind}, newest first (by timestamp)", "tags": ["ingest"],
        "parameters": [*filters, *PAGE_PARAMETERS],
        "responses": {"200": {"description": "a page", "content": json_content(page_of(model))},
                      "400": problem_response("bad filter, limit or cursor")},
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description}


_SERVICE = _query("service", {"type": "string"}, "exact service name")
_SINCE = _query("since", _TIME, "RFC 3339, inclusive")
_UNTIL = _query("until", _TIME, "RFC 3339, exclusive")

OPENAPI: dict[str, Any] = {
    "paths": {
        "/logs": {
            "post": _post("log events", "LogIn", "log.received"),
            "get": _get("log events", "LogEntry", [
                _SERVICE,
                _query("level", {"enum": ["debug", "info", "warning", "error", "critical"]},
                       "exact level"),
                _SINCE, _UNTIL,
                _query("q", {"type": "string"}, "case-insensitive substring of the message"),
            ]),
        },
        "/health": {
            "post": _post("health pings", "HealthIn", "health.reported"),
            "get": _get("health pings", "HealthPing", [_SERVICE, _SINCE, _UNTIL]),
        },
    },
    "schemas": {
        "LogIn": schema_of(LogIn),
        "HealthIn": schema_of(HealthIn),
        "Accepted": schema_of(Accepted, "serialization"),
        "LogEntry": schema_of(LogOut, "serialization"),
        "HealthPing": schema_of(HealthOut, "serialization"),
    },
}
