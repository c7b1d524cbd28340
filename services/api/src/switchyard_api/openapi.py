"""The OpenAPI 3.1 document, generated from the endpoints' declarations and nothing else.

Every operation, parameter, body and response schema comes from ``http.contract``'s
registry, whose models are the ones that validate requests and serialise responses.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from switchyard_api.http.contract import OPERATIONS, Operation, Out
from switchyard_api.http.fields import COMPONENT_REF, JSON_VALUE_SCHEMA, without_null

REF = "#/components/schemas/{model}"
PROBLEM: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
_REQUEST_ID = {
    "X-Request-ID": {"description": "the client's, or a new one", "schema": {"type": "string"}}
}
_RETRY_AFTER = {
    "Retry-After": {"required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"}}
}


class _Schemas:
    """Component schemas: each model once, by its title; ``$defs`` hoisted beside it."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {"Problem": PROBLEM, "JsonValue": JSON_VALUE_SCHEMA}

    def of(self, kind: Any, mode: str) -> dict[str, Any]:
        schema = TypeAdapter(kind).json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
        self.components.update(schema.pop("$defs", {}))
        title = schema.get("title")
        if schema.get("type") == "object" and title:
            self.components.setdefault(title, schema)
            return {"$ref": REF.format(model=title)}
        return schema


def _resolve(node: Any) -> Any:
    """``{"x-component-ref": name}`` → a ``$ref`` to that component (see ``http.fields``)."""
    if isinstance(node, dict):
        if COMPONENT_REF in node:
            return {"$ref": REF.format(model=node[COMPONENT_REF])}
        # An optional field's `default: null` is no value a client may send.
        return {
            key: _resolve(value)
            for key, value in node.items()
            if not (key == "default" and value is None)
        }
    if isinstance(node, list):
        return [_resolve(item) for item in node]
    return node


def _problem(description: str, status: int) -> dict[str, Any]:
    headers = {**_REQUEST_ID, **(_RETRY_AFTER if status in (429, 503) else {})}
    return {
        "description": description,
        "headers": headers,
        "content": {"application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}},
    }


def _response(out: Out, schemas: _Schemas) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": out.description,
        "headers": {**_REQUEST_ID, **{name: dict(header) for name, header in out.headers.items()}},
    }
    if out.model is not None:
        response["content"] = {out.media_type: {"schema": schemas.of(out.model, "serialization")}}
    if out.links:
        response["links"] = {name: dict(link) for name, link in out.links.items()}
    return response


def _operation(operation: Operation, schemas: _Schemas) -> dict[str, Any]:
    document: dict[str, Any] = {
        "operationId": operation.operation_id,
        "summary": operation.summary,
        "tags": list(operation.tags),
    }
    if operation.description:
        document["description"] = operation.description
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": schema}
        for name, schema in operation.path_params.items()
    ]
    if operation.query is not None:
        query = operation.query.model_json_schema(ref_template=REF)
        required = set(query.get("required", []))
        for name, original in query["properties"].items():
            schema = without_null(original)
            description = schema.pop("description", None)
            parameters.append(
                {
                    "name": name,
                    "in": "query",
                    "required": name in required,
                    "schema": schema,
                    **({"description": description} if description else {}),
                }
            )
    if parameters:
        document["parameters"] = parameters
    if operation.body is not None:
        content = {"application/json": {"schema": schemas.of(operation.body.model, "validation")}}
        content.update({media: dict(spec) for media, spec in operation.body.other_media.items()})
        document["requestBody"] = {"required": True, "content": content}
    responses = {
        str(status): _response(out, schemas) for status, out in sorted(operation.responses.items())
    }
    responses.update(
        {
            str(status): _problem(description, status)
            for status, description in sorted(operation.problems.items())
        }
    )
    document["responses"] = dict(sorted(responses.items()))
    if operation.admin:
        document["security"] = [{"adminToken": []}]
    return document


def build_openapi() -> dict[str, Any]:
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for operation in OPERATIONS:
        paths.setdefault(operation.path, {})[operation.method.lower()] = _operation(
            operation, schemas
        )
    document: dict[str, Any] = _resolve(
        {
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
                "schemas": schemas.components,
                "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
            },
        }
    )
    return document
