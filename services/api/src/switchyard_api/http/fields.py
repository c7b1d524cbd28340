"""Field types whose JSON Schema says exactly what their validation accepts.

Each rule is written once, as a JSON Schema keyword pydantic enforces itself (``pattern`` runs
in pydantic's Rust regex engine, whose syntax here means the same as ECMA-262's and
Python's), so the OpenAPI document and the code cannot disagree.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

# pattern → what a 400 says when a value does not match it (instead of the regex itself)
PATTERN_MESSAGES: dict[str, str] = {}


def explained(pattern: str, message: str) -> str:
    PATTERN_MESSAGES[pattern] = message
    return pattern


# "Printable": no control characters (Unicode Cc: U+0000-U+001F, U+007F-U+009F).
_CONTROL = r"\x00-\x1f\x7f-\x9f"
# Printable text that neither starts nor ends with a space.
TRIMMED_PATTERN = explained(
    rf"^[^{_CONTROL} ](?:[^{_CONTROL}]*[^{_CONTROL} ])?$",
    "must be printable (no control characters), without leading or trailing spaces",
)
# PostgreSQL text cannot hold NUL; everything else is stored as sent.
NO_NUL_PATTERN = explained(r"^[^\x00]*$", "must not contain NUL (\\u0000)")


def trimmed(max_length: int, description: str) -> Any:
    """``Annotated[str, trimmed(n, ...)]``: printable text of 1 to n characters without
    leading or trailing spaces."""
    return Field(
        min_length=1, max_length=max_length, pattern=TRIMMED_PATTERN, description=description
    )


def text(min_length: int, max_length: int, description: str | None = None) -> Any:
    """``Annotated[str, text(...)]``: any text PostgreSQL holds (no NUL)."""
    return Field(
        min_length=min_length,
        max_length=max_length,
        pattern=NO_NUL_PATTERN,
        description=description,
    )


def without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional property's schema without its null branch: for a model whose code
    refuses null (a PATCH), or for query parameters, which cannot be null."""
    branches = [branch for branch in schema.get("anyOf", ()) if branch != {"type": "null"}]
    if len(branches) == 1 and "anyOf" in schema:
        rest = {key: value for key, value in schema.items() if key != "anyOf"}
        return {**branches[0], **rest}
    return schema


def no_nulls(schema: dict[str, Any]) -> None:
    """``json_schema_extra`` for a model that refuses null in every field."""
    for name, prop in schema.get("properties", {}).items():
        schema["properties"][name] = without_null(prop)


def _integral(value: Any) -> Any:
    # JSON Schema's "integer" includes 2.0; pydantic's strict int would refuse it.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# ``Annotated[int, Field(strict=True, ...), INTEGRAL]`` (constraints first, or pydantic
# cannot put them in the schema): a JSON integer, never "1" or true.
INTEGRAL = BeforeValidator(_integral)


# RFC 3339 only (pydantic alone would take a number as Unix time, or "2026-01-01").
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})$")


def _rfc3339(value: Any) -> Any:
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError(
            "must be an RFC 3339 date-time with an offset, "
            "e.g. 2026-11-22T10:00:00Z (at most 6 fractional digits)"
        )
    return value


def _in_utc(value: datetime) -> datetime:
    # RFC 3339 allows offsets up to 23:59; PostgreSQL's stop at 15:59. UTC suits both.
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("must fall between years 1 and 9999 in UTC") from None


Timestamp = Annotated[
    datetime,
    BeforeValidator(_rfc3339),
    AfterValidator(_in_utc),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "description": "RFC 3339 with an offset, at most 6 fractional digits",
        }
    ),
]

COMPONENT_REF = "x-component-ref"
INT64 = (-(2**63), 2**63 - 1)
FLOAT_MAX = 1.7976931348623157e308
MAX_DEPTH = 64


def _json_value_schema() -> dict[str, Any]:
    # pydantic would chase a "$ref" it did not make; openapi.py turns this into one.
    return {COMPONENT_REF: "JsonValue"}


# Any JSON PostgreSQL's jsonb and our serialiser hold; a component of the document.
JSON_VALUE_SCHEMA: dict[str, Any] = {
    "description": "any JSON; a number without a fractional part (1e30 too) fits signed "
    "64 bits; strings hold no NUL",
    "anyOf": [
        {"type": "null"},
        {"type": "boolean"},
        {"type": "string", "pattern": NO_NUL_PATTERN},
        {"type": "integer", "minimum": INT64[0], "maximum": INT64[1]},
        {"type": "number", "not": {"type": "integer"}, "minimum": -FLOAT_MAX, "maximum": FLOAT_MAX},
        {"type": "array", "items": _json_value_schema()},
        {
            "type": "object",
            "additionalProperties": _json_value_schema(),
            "propertyNames": {"pattern": NO_NUL_PATTERN},
        },
    ],
}


def _problem_in(value: Any, depth: int = 0) -> tuple[str, str] | None:
    """The first value nothing downstream can hold: (relative path, message).

    Runs on every ingested event's ``attributes``: the common cases (text, then small
    numbers) are tested first, and a path is spelled out only for the value refused."""
    if isinstance(value, str):
        return ("", "must not contain NUL (\\u0000)") if "\x00" in value else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return None if INT64[0] <= value <= INT64[1] else ("", "integer beyond 64 bits")
    if isinstance(value, float):
        if not math.isfinite(value):
            return "", "number out of range"
        if value.is_integer() and not INT64[0] <= value <= INT64[1]:
            return "", "integer beyond 64 bits"
        return None
    if depth >= MAX_DEPTH:
        return "", f"nested deeper than {MAX_DEPTH} levels"
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        if isinstance(key, str) and "\x00" in key:
            return f".{key}", "key must not contain NUL (\\u0000)"
        found = _problem_in(item, depth + 1)
        if found is not None:
            step = f"[{key}]" if isinstance(key, int) else f".{key}"
            return step + found[0], found[1]
    return None


class NestedValueError(ValueError):
    """A bad value inside a field; ``validation.errors_from`` appends ``path`` to its name."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


def _storable(value: dict[str, Any]) -> dict[str, Any]:
    found = _problem_in(value) if value else None
    if found is not None:
        raise NestedValueError(*found)
    return value


JsonObject = Annotated[
    dict[str, Any],
    AfterValidator(_storable),
    WithJsonSchema(
        {
            "type": "object",
            "additionalProperties": _json_value_schema(),
            "propertyNames": {"pattern": NO_NUL_PATTERN},
        }
    ),
]
