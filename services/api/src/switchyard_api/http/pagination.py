"""Cursor pagination: ``limit`` (default 50, max 1000) and an opaque ``cursor``."""

from __future__ import annotations

import base64
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from switchyard_api.http.problems import invalid_fields


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: int = Field(default=50, ge=1, le=1000)
    cursor: str | None = None

    @field_validator("cursor")
    @classmethod
    def _non_empty(cls, value: str | None) -> str | None:
        return value or None


def encode_cursor(position: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(position)).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    """The position a cursor stands for; a 400 naming ``cursor`` when it was tampered with."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, orjson.JSONDecodeError):
        position = None
    if not isinstance(position, dict):
        raise invalid_fields([{"field": "cursor", "message": "not a cursor this API issued"}])
    return position


def page(items: list[Any], limit: int, next_position: dict[str, Any] | None) -> dict[str, Any]:
    return {"items": items, "next_cursor": encode_cursor(next_position) if next_position else None}
