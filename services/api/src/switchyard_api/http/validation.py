"""Reading request bodies and query strings into pydantic models, or a 400 naming each field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import orjson
from flask import request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from switchyard_api.http.fields import PATTERN_MESSAGES, NestedValueError
from switchyard_api.http.problems import Problem, invalid_fields

Model = TypeVar("Model", bound=BaseModel)


def request_body() -> bytes:
    """The whole request body, read once (not cached on the request).

    A body whose Content-Length is within the limit is read straight from the server's
    input stream: werkzeug's checked, wrapped stream costs a tenth of a small POST's
    time. A chunked body (the server ends the stream) is read up to one byte past the
    limit, so one over it is a 413, not JSON cut at the limit (werkzeug's stream
    truncates there). Anything else goes through werkzeug, which answers 413 or 400.
    """
    current = request._get_current_object()  # type: ignore[attr-defined]
    environ = current.environ
    limit = current.max_content_length
    length = environ.get("CONTENT_LENGTH")
    chunked = "HTTP_TRANSFER_ENCODING" in environ
    if length and length.isdigit() and not chunked:
        size = int(length)
        if limit is None or size <= limit:
            return environ["wsgi.input"].read(size)  # type: ignore[no-any-return]
    elif (chunked or not length) and limit is not None and environ.get("wsgi.input_terminated"):
        body: bytes = environ["wsgi.input"].read(limit + 1)
        if len(body) > limit:
            raise RequestEntityTooLarge()
        return body
    return current.get_data(cache=False)  # type: ignore[no-any-return]


def read_json() -> Any:
    """The request body as JSON; whatever the Content-Type says, so plain `curl -d` works."""
    raw = request_body()
    if not raw.strip():
        raise Problem(
            400,
            "The request body is empty; send a JSON document.",
            title="Malformed JSON",
            slug="malformed-json",
        )
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Problem(
            400,
            f"The request body is not valid JSON: {exc}",
            title="Malformed JSON",
            slug="malformed-json",
        ) from None


def field_path(location: tuple[int | str, ...], prefix: str = "") -> str:
    """``("items", 3, "level")`` → ``items[3].level``."""
    path = prefix
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "body"


def errors_from(exc: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    errors = []
    for error in exc.errors(include_url=False):
        location = tuple(part for part in error["loc"] if part not in ("function-after",))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        elif error["type"] == "missing":
            message = "field required"
        elif error["type"] == "string_pattern_mismatch":
            message = PATTERN_MESSAGES.get(error.get("ctx", {}).get("pattern", ""), message)
        path = field_path(location, prefix)
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, NestedValueError):
            path += cause.path
        errors.append({"field": path, "message": message})
    return errors


def validate(model: type[Model], data: Any, prefix: str = "") -> Model:
    if not isinstance(data, dict):
        raise invalid_fields([{"field": prefix or "body", "message": "must be a JSON object"}])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_fields(errors_from(exc, prefix)) from None


def parse_body(model: type[Model]) -> Model:
    return validate(model, read_json())


def parse_query(model: type[Model], extra: Mapping[str, Any] | None = None) -> Model:
    # Each declared parameter is one value: `limit=1&limit=2` is an array, which the
    # document's scalar schema refuses, so the code refuses it too.
    repeated = sorted(name for name in model.model_fields if len(request.args.getlist(name)) > 1)
    if repeated:
        raise invalid_fields([{"field": name, "message": "give it once"} for name in repeated])
    data: dict[str, Any] = dict(request.args.items())
    data.update(extra or {})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_fields(errors_from(exc)) from None
