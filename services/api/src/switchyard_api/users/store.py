"""Users in PostgreSQL. Each change and its event commit in one transaction (outbox)."""

from __future__ import annotations

from typing import Any, cast

import sqlalchemy as sa

from switchyard.db.models import User
from switchyard.events import CloudEvent
from switchyard.outbox import add_event

users = cast(sa.Table, User.__table__)
SOURCE = "/switchyard/api"
# Integer primary key: ids past this cannot exist, so they are a 404 without a query.
MAX_ID = 2**31 - 1


def _as_dict(row: sa.RowMapping) -> dict[str, Any]:
    user = dict(row)
    user["created_at"] = user["created_at"].isoformat()
    user["updated_at"] = user["updated_at"].isoformat()
    return user


def _publish(
    connection: sa.Connection,
    topic: str,
    event_type: str,
    user_id: int,
    data: dict[str, Any],
    request_id: str | None,
) -> None:
    event = CloudEvent(type=event_type, source=SOURCE, subject=str(user_id), data=data)
    add_event(connection, topic, event, key=str(user_id), request_id=request_id)


class UserStore:
    def __init__(self, engine: sa.Engine, topic: str) -> None:
        self.engine = engine
        self.topic = topic

    def create(self, fields: dict[str, Any], request_id: str | None) -> dict[str, Any]:
        with self.engine.begin() as connection:
            row = (
                connection.execute(sa.insert(users).values(**fields).returning(*users.c))
                .mappings()
                .one()
            )
            user = _as_dict(row)
            _publish(connection, self.topic, "user.created", user["id"], user, request_id)
        return user

    def get(self, user_id: int) -> dict[str, Any] | None:
        if not 0 < user_id <= MAX_ID:
            return None
        with self.engine.connect() as connection:
            row = (
                connection.execute(sa.select(*users.c).where(users.c.id == user_id))
                .mappings()
                .first()
            )
        return _as_dict(row) if row else None

    def list(self, after_id: int, limit: int) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            rows = (
                connection.execute(
                    sa.select(*users.c)
                    .where(users.c.id > after_id)
                    .order_by(users.c.id)
                    .limit(limit)
                )
                .mappings()
                .all()
            )
        return [_as_dict(row) for row in rows]

    def update(
        self, user_id: int, changes: dict[str, Any], request_id: str | None
    ) -> dict[str, Any] | None:
        if not 0 < user_id <= MAX_ID:
            return None
        with self.engine.begin() as connection:
            row = (
                connection.execute(
                    sa.update(users)
                    .where(users.c.id == user_id)
                    .values(**changes, updated_at=sa.func.now())
                    .returning(*users.c)
                )
                .mappings()
                .first()
            )
            if row is None:
                return None
            user = _as_dict(row)
            _publish(
                connection,
                self.topic,
                "user.updated",
                user_id,
                {**user, "changed": sorted(changes)},
                request_id,
            )
        return user

    def delete(self, user_id: int, request_id: str | None) -> bool:
        if not 0 < user_id <= MAX_ID:
            return False
        with self.engine.begin() as connection:
            deleted = connection.execute(
                sa.delete(users).where(users.c.id == user_id).returning(users.c.id)
            ).first()
            if deleted is None:
                return False
            _publish(connection, self.topic, "user.deleted", user_id, {"id": user_id}, request_id)
        return True
