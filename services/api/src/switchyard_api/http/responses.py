"""JSON responses, serialised with orjson."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from flask import Response


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(body, option=orjson.OPT_NAIVE_UTC), status=status,
                    headers=dict(headers or {}), mimetype="application/json")


def raw_json_response(body: bytes, status: int = 200,
                      headers: Mapping[str, str] | None = None) -> Response:
    """Already-serialised JSON (a cache hit), sent as it is."""
    return Response(body, status=status, headers=dict(headers or {}), mimetype="application/json")
