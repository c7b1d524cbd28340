"""The OpenAPI 3.1 document, assembled from each domain's fragment.

Each domain package exposes ``OPENAPI`` = ``{"paths": {...}, "schemas": {...}}``; request
and response schemas come from the same pydantic models that validate requests.
"""

from __future__ import annotations

from typing import Any

from switchyard_api.coupons import openapi as coupons_openapi
from switchyard_api.ingest import openapi as ingest_openapi
from switchyard_api.openapi_parts import PROBLEM_SCHEMA, problem_response
from switchyard_api.users import openapi as users_openapi

FRAGMENTS = (users_openapi.OPENAPI, coupons_openapi.OPENAPI, ingest_openapi.OPENAPI)

OPS_PATHS: dict[str, Any] = {
    "/healthz": {"get": {"summary": "Liveness", "tags": ["ops"],
                         "responses": {"200": {"description": "alive"}}}},
    "/readyz": {"get": {"summary": "Readiness: 200 when PostgreSQL, Redis and Kafka answer",
                        "tags": ["ops"], "responses": {
                            "200": {"description": "ready"},
                            "503": problem_response("a dependency does not answer")}}},
    "/metrics": {"get": {"summary": "Prometheus metrics", "tags": ["ops"], "responses": {
        "200": {"description": "Prometheus text format",
                "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
    "/openapi.json": {"get": {"summary": "This document", "tags": ["ops"],
                              "responses": {"200": {"description": "OpenAPI 3.1"}}}},
}


def build_openapi() -> dict[str, Any]:
    paths: dict[str, Any] = dict(OPS_PATHS)
    schemas: dict[str, Any] = {"Problem": PROBLEM_SCHEMA}
    for fragment in FRAGMENTS:
        paths.update(fragment["paths"])
        for name, original in fragment["schemas"].items():
            schema = dict(original)
            schemas.update(schema.pop("$defs", {}))
            schemas[name] = schema
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Switchyard API",
            "version": "0.1.0",
            "description": "Every write becomes a Kafka event. Errors are RFC 9457 problem "
                           "details; every response carries X-Request-ID.",
        },
        "servers": [{"url": "http://127.0.0.1:8080"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
        },
    }
