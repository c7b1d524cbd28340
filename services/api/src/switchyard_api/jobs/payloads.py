"""A job's ``type`` and ``payload``: checked against the catalogue, documented from it.

Guarantee: the OpenAPI document and the check agree on which payloads each job type takes.
Both come from the type's model in :mod:`switchyard.jobs.types`: the document shows its
JSON Schema with what the API adds spelled out (strings hold no NUL, any JSON is the
``JsonValue`` component, a URL is absolute http(s) with a host a URL parser takes), and
:func:`check_payload` enforces exactly that: the model in strict mode (so ``"5"`` is not a
number, as in the document), the URL pattern, and storability in PostgreSQL. A payload is
stored as sent, never rewritten by the model.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from switchyard.jobs.types import CATALOGUE, UnknownJobType
from switchyard_api.http.fields import COMPONENT_REF, NO_NUL_PATTERN, JsonObject, explained
from switchyard_api.http.validation import errors_from

Errors = list[dict[str, str]]
MAX_URL_LENGTH = 2048

_HEX4 = "[0-9A-Fa-f]{1,4}"
# RFC 4291 text forms without an embedded IPv4 part or a zone.
_IPV6 = "|".join(
    (
        rf"(?:{_HEX4}:){{7}}{_HEX4}",
        rf"(?:{_HEX4}:){{1,7}}:",
        rf"(?:{_HEX4}:){{1,6}}:{_HEX4}",
        rf"(?:{_HEX4}:){{1,5}}(?::{_HEX4}){{1,2}}",
        rf"(?:{_HEX4}:){{1,4}}(?::{_HEX4}){{1,3}}",
        rf"(?:{_HEX4}:){{1,3}}(?::{_HEX4}){{1,4}}",
        rf"(?:{_HEX4}:){{1,2}}(?::{_HEX4}){{1,5}}",
        rf"{_HEX4}:(?::{_HEX4}){{1,6}}",
        rf":(?:(?::{_HEX4}){{1,7}}|:)",
    )
)
_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# The last label starts with a letter: a URL parser reads a host ending in a number (or
# 0x...) as an IPv4 address, and refuses it unless it is one.
_TOP = "[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = rf"(?:(?:{_LABEL}\.)*{_TOP}|{_OCTET}(?:\.{_OCTET}){{3}}|\[(?:{_IPV6})\])"
_PORT = "(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
URL_MESSAGE = (
    f"must be an absolute http:// or https:// URL of at most {MAX_URL_LENGTH} characters with "
    "a host name (its last label starting with a letter) or an IP address, an optional "
    "port, no credentials, and only URL characters (percent-encode the rest)"
)
# WHATWG URL code points, or a percent-encoded byte; one fragment. The model parses URLs
# strictly, and strict parsing refuses anything else (spaces, "<", a second "#", ...).
_CHAR = r"(?:[A-Za-z0-9!$&'()*+,\-./:;=?@_~]|%[0-9A-Fa-f]{2})"
URL_PATTERN = explained(
    rf"^https?://{_HOST}(?::{_PORT})?(?:[/?]{_CHAR}*)?(?:#{_CHAR}*)?$", URL_MESSAGE
)
_URL_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_URL_LENGTH,
    "pattern": URL_PATTERN,
    "description": f"absolute http(s) URL, at most {MAX_URL_LENGTH} characters",
}
_URL = re.compile(URL_PATTERN)
_STORABLE: TypeAdapter[Any] = TypeAdapter(JsonObject)
_BRANCHES = ("anyOf", "oneOf", "allOf")
_TYPED = ("type", "enum", "const", "$ref", *_BRANCHES)


def _document(node: Any, urls: list[str], path: str) -> Any:
    """The API's spelling of one node of a payload model's JSON Schema."""
    if not isinstance(node, dict):
        return node
    if "$ref" in node or "$defs" in node:
        raise TypeError(f"payload models must be flat; {path} refers to another model")
    if not any(key in node for key in _TYPED):
        return {COMPONENT_REF: "JsonValue", **_described(node)}
    if node.get("format") in ("uri", "uri-reference"):
        if "." in path:
            raise TypeError(f"only a top-level field can be a URL; {path} is one")
        urls.append(path)
        return {**_URL_SCHEMA, **_described(node)}
    structural = ("title", "properties", "additionalProperties", "items", *_BRANCHES)
    out = {key: value for key, value in node.items() if key not in structural}
    for key in _BRANCHES:
        if key in node:
            out[key] = [_document(branch, urls, path) for branch in node[key]]
    if "items" in node:
        out["items"] = _document(node["items"], urls, f"{path}[]")
    elif node.get("type") == "array":
        out["items"] = {COMPONENT_REF: "JsonValue"}
    if node.get("type") == "string" and not {"pattern", "enum", "const"} & node.keys():
        out["pattern"] = NO_NUL_PATTERN
    if node.get("type") == "object":
        out["propertyNames"] = {"pattern": NO_NUL_PATTERN}
        out["properties"] = {
            name: _document(child, urls, f"{path}.{name}" if path else name)
            for name, child in node.get("properties", {}).items()
        }
        extra = node.get("additionalProperties", True)
        if extra is True:
            out["additionalProperties"] = {COMPONENT_REF: "JsonValue"}
        elif isinstance(extra, dict):
            out["additionalProperties"] = _document(extra, urls, f"{path}.*")
        else:
            out["additionalProperties"] = extra
    return out


def _described(node: dict[str, Any]) -> dict[str, Any]:
    return {key: node[key] for key in ("description", "default") if key in node}


class _Kind:
    def __init__(self, name: str, model: type[BaseModel]) -> None:
        self.name = name
        self.model = model
        self.urls: list[str] = []
        self.schema: dict[str, Any] = _document(model.model_json_schema(), self.urls, "")
        self.schema["description"] = (model.__doc__ or f"`{name}` payload").strip()


KINDS: dict[str, _Kind] = {name: _Kind(name, model) for name, model in sorted(CATALOGUE.items())}


def _integral(value: Any) -> Any:
    # JSON Schema's "integer" includes 2.0; the model's strict int would refuse it.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _integral(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral(item) for item in value]
    return value


def _rounded_int(value: Any, path: str = "") -> str | None:
    """Where an integer below -2**63 hides: orjson reads one as a float, and the nearest
    float, -2**63 itself, passes the storability check (``http.fields``) as if in range."""
    if isinstance(value, float):
        return path if value.is_integer() and value <= -(2.0**63) else None
    if not isinstance(value, dict | list):
        return None
    for key, item in value.items() if isinstance(value, dict) else enumerate(value):
        found = _rounded_int(item, f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}")
        if found is not None:
            return found
    return None


def check_type(job_type: Any) -> Errors:
    if not isinstance(job_type, str):
        return [{"field": "type", "message": "must be a string naming a job type"}]
    if job_type not in KINDS:
        return [{"field": "type", "message": str(UnknownJobType(job_type))}]
    return []


def check_payload(job_type: str, payload: Any) -> Errors:
    """Each problem of ``payload`` as the job type ``job_type`` (known), by field path."""
    if not isinstance(payload, dict):
        return [{"field": "payload", "message": "must be a JSON object"}]
    kind = KINDS[job_type]
    try:
        # First: a NUL or a 65-bit integer anywhere would fail in PostgreSQL, not here.
        _STORABLE.validate_python(payload)
        rounded = _rounded_int(payload)  # nested at most MAX_DEPTH now
        if rounded is not None:
            return [{"field": f"payload{rounded}", "message": "integer beyond 64 bits"}]
        kind.model.model_validate(_integral(payload), strict=True)
        errors: Errors = []
    except ValidationError as exc:
        errors = errors_from(exc, "payload")
    named = {error["field"] for error in errors}
    return errors + [
        {"field": field, "message": URL_MESSAGE}
        for field, value in ((f"payload.{name}", payload.get(name)) for name in kind.urls)
        if field not in named
        and isinstance(value, str)
        and (len(value) > MAX_URL_LENGTH or not _URL.fullmatch(value))
    ]


def branches(common: dict[str, Any], required: list[str]) -> list[dict[str, Any]]:
    """One body schema per job type: ``common`` properties, its ``type`` and ``payload``."""
    return [
        {
            "type": "object",
            "title": f"{kind.name} job",
            "properties": {
                **common,
                "type": {"const": kind.name, "description": "the job type"},
                "payload": kind.schema,
            },
            "required": sorted({*required, "type", "payload"}),
            "additionalProperties": False,
        }
        for kind in KINDS.values()
    ]
