"""Request bodies of the ingest endpoints: one object, a JSON array, or NDJSON.

Every bad field is named with the item's index (``[3].level``); for NDJSON the index is
the line's (0-based, blank lines counted but skipped). pydantic parses and validates the
bytes in one pass (Rust), which is most of the cost of a request.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from flask import request
from pydantic import BaseModel, TypeAdapter, ValidationError

from switchyard_api.http.problems import Problem, invalid_fields
from switchyard_api.http.validation import errors_from, request_body

Item = TypeVar("Item", bound=BaseModel)
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl")
MAX_ERRORS = 100


def _malformed(detail: str) -> Problem:
    return Problem(400, detail, title="Malformed JSON", slug="malformed-json")


class BodyParser(Generic[Item]):
    def __init__(self, model: type[Item], max_items: int) -> None:
        self.model = model
        self.max_items = max_items
        self._one = TypeAdapter(model)
        self._many = TypeAdapter(list[model])  # type: ignore[valid-type]

    def parse(self) -> list[Item]:
        raw = request_body()
        items = self._ndjson(raw) if request.mimetype in NDJSON_TYPES else self._json(raw)
        if not items:
            raise invalid_fields([{"field": "body", "message": "send at least one item"}])
        if len(items) > self.max_items:
            raise Problem(
                413,
                f"{len(items)} items in one request; the limit is {self.max_items}.",
                slug="too-many-items",
            )
        return items

    def _json(self, raw: bytes) -> list[Item]:
        start = raw.lstrip()[:1]
        if not start:
            raise _malformed("The request body is empty; send a JSON object or array.")
        adapter = self._many if start == b"[" else self._one
        try:
            parsed = adapter.validate_json(raw)
        except ValidationError as exc:
            if exc.errors()[0]["type"] == "json_invalid":
                raise _malformed(
                    f"The request body is not valid JSON: {exc.errors()[0]['msg']}"
                ) from None
            if start not in (b"[", b"{"):
                raise invalid_fields(
                    [{"field": "body", "message": "must be a JSON object or array"}]
                ) from None
            raise _invalid(errors_from(exc)) from None
        return parsed if isinstance(parsed, list) else [parsed]

    def _ndjson(self, raw: bytes) -> list[Item]:
        items: list[Item] = []
        errors: list[dict[str, str]] = []
        for index, line in enumerate(raw.split(b"\n")):
            if not line.strip():
                continue
            try:
                items.append(self._one.validate_json(line))
            except ValidationError as exc:
                first = exc.errors()[0]
                if first["type"] == "json_invalid":
                    errors.append(
                        {
                            "field": f"[{index}]",
                            "message": f"line is not valid JSON: {first['msg']}",
                        }
                    )
                elif first["type"] == "model_type":
                    errors.append({"field": f"[{index}]", "message": "must be a JSON object"})
                else:
                    errors.extend(errors_from(exc, f"[{index}]"))
        if errors:
            raise _invalid(errors)
        return items


def _invalid(errors: list[dict[str, str]]) -> Problem:
    shown = errors[:MAX_ERRORS]
    more = f" (the first {MAX_ERRORS} are listed)" if len(errors) > MAX_ERRORS else ""
    return invalid_fields(shown, f"{len(errors)} field(s) are invalid{more}")
