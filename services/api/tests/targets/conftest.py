"""Helpers for the targets API tests: register through the API, and store checks as the
batcher does (rows in ``target_checks``), so history and uptime have something to read."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from flask.testing import FlaskClient

from switchyard.db.models.targets import Target, TargetCheck

ADMIN = {"Authorization": "Bearer test-admin-token-of-the-suite-only-0001"}
targets_table = cast(sa.Table, Target.__table__)
checks_table = cast(sa.Table, TargetCheck.__table__)


def unique_name(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def register(client: FlaskClient, **fields: Any) -> dict[str, Any]:
    """POST /targets (201 expected); the target as the response shows it."""
    body = {"name": unique_name(), "url": "http://127.0.0.1:9/health", **fields}
    response = client.post("/targets", json=body)
    assert response.status_code == 201, response.data
    target = response.get_json()
    assert isinstance(target, dict)
    return target


def store_check(
    engine: sa.Engine,
    target_id: int,
    checked_at: datetime,
    status: str = "up",
    check_id: uuid.UUID | None = None,
    **fields: Any,
) -> uuid.UUID:
    check_id = check_id or uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(
            sa.insert(checks_table).values(
                id=check_id, target_id=target_id, checked_at=checked_at, status=status, **fields
            )
        )
    return check_id
