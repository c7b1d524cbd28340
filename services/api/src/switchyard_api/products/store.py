"""Products in PostgreSQL. A product and its ``product.created`` event commit in one
transaction (outbox): never a product without its event, never an event without its product.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from psycopg2 import errors as pg_errors

from switchyard.db.models import Product as ProductRow
from switchyard.events import CloudEvent
from switchyard.outbox import add_event

products = cast(sa.Table, ProductRow.__table__)
SOURCE = "/switchyard/api"
CREATED = "product.created"
# Integer primary key: ids past this cannot exist, so they are a 404 without a query.
MAX_ID = 2**31 - 1


class UnknownUser(Exception):
    """The product's ``user_id`` names no user (now: it may have just been deleted)."""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


# name → (type check, what to show when the stored entry lacks it)
_ERROR_FIELDS: dict[str, tuple[Callable[[Any], bool], Any]] = {
    "index": (_is_int, -1),
    "url": (_is_str, ""),
    "reason": (_is_str, "unknown"),
    "message": (_is_str, ""),
}
_DETAIL_FIELDS: dict[str, tuple[Callable[[Any], bool], Any]] = {
    "index": (_is_int, -1),
    "path": (_is_str, ""),
    "variant": (_is_str, ""),
    **dict.fromkeys(("width", "height", "bytes_in", "bytes_out"), (_is_int, 0)),
}


def _entries(
    value: Any, fields: dict[str, tuple[Callable[[Any], bool], Any]]
) -> list[dict[str, Any]]:
    """The documented fields of each stored entry. Nothing stored may make a read fail: a
    field the worker wrote in another shape shows as its default, anything else is left out.
    """
    if not isinstance(value, list):
        return []
    return [
        {
            name: entry.get(name) if check(entry.get(name)) else default
            for name, (check, default) in fields.items()
        }
        for entry in value
        if isinstance(entry, dict)
    ]


def as_dict(row: sa.RowMapping) -> dict[str, Any]:
    product = dict(row)
    product["image_errors"] = _entries(product["image_errors"], _ERROR_FIELDS)
    product["image_details"] = _entries(product["image_details"], _DETAIL_FIELDS)
    for name in ("processed_at", "created_at", "updated_at"):
        product[name] = _iso(product[name])
    return product


class ProductStore:
    def __init__(
        self, engine: sa.Engine, topic: str, render: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> None:
        """``render`` turns a row into the product as the API returns it (the event's data)."""
        self.engine = engine
        self.topic = topic
        self.render = render

    def create(self, fields: dict[str, Any], request_id: str | None) -> dict[str, Any]:
        """Insert the product and queue its event, in one transaction; :class:`UnknownUser`
        if ``fields["user_id"]`` names no user."""
        try:
            with self.engine.begin() as connection:
                row = (
                    connection.execute(sa.insert(products).values(**fields).returning(*products.c))
                    .mappings()
                    .one()
                )
                product = self.render(as_dict(row))
                product_id = product["product_id"]
                event = CloudEvent(
                    type=CREATED, source=SOURCE, subject=str(product_id), data=product
                )
                add_event(connection, self.topic, event, key=str(product_id), request_id=request_id)
        except sa.exc.IntegrityError as exc:
            if isinstance(exc.orig, pg_errors.ForeignKeyViolation):
                raise UnknownUser(fields["user_id"]) from None
            raise
        return product

    def get(self, product_id: int) -> dict[str, Any] | None:
        if not 0 < product_id <= MAX_ID:
            return None
        with self.engine.connect() as connection:
            row = (
                connection.execute(
                    sa.select(*products.c).where(products.c.product_id == product_id)
                )
                .mappings()
                .first()
            )
        return as_dict(row) if row else None

    def list(self, user_id: int | None, before_id: int | None, limit: int) -> list[dict[str, Any]]:
        """Newest first (descending ``product_id``), below ``before_id`` when given."""
        query = sa.select(*products.c).order_by(products.c.product_id.desc()).limit(limit)
        if user_id is not None:
            query = query.where(products.c.user_id == user_id)
        if before_id is not None:
            query = query.where(products.c.product_id < before_id)
        with self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [as_dict(row) for row in rows]
