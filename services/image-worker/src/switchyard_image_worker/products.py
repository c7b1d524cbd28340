"""The image-worker's statements on the ``products`` table; each is one short transaction.

Guarantees:

- :meth:`ProductRows.claim` moves a product to ``processing`` (``attempts + 1``) only if
  it is still ``pending`` or ``processing``; a product already ``done`` or ``failed``, or
  gone, is not claimed and is skipped (its inputs never change once written).
- :meth:`ProductRows.finish` writes the whole result in ONE ``UPDATE``: paths, errors,
  details, status and ``processed_at`` are visible together or not at all.
- :meth:`ProductRows.fail_unfinished` marks a product ``failed`` with one error per image
  (a poison event, or processing given up), but never touches a finished product.
- :meth:`ProductRows.requeue_stale` gives a product unfinished for too long a new
  ``product.created`` in the same transaction that marks it requeued (outbox): never a
  product left ``pending`` because its event was lost, and with ``SKIP LOCKED`` replicas
  requeue each product once per period.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from switchyard.db.models.products import STATUSES, Product
from switchyard.events import CloudEvent
from switchyard.outbox import add_event

UNFINISHED = ("pending", "processing")


@dataclass(frozen=True)
class ImageError:
    index: int
    url: str
    reason: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "url": self.url,
            "reason": self.reason,
            "message": self.message[:1000],
        }


@dataclass(frozen=True)
class ImageDetail:
    index: int
    path: str  # relative to MEDIA_ROOT
    variant: str
    width: int
    height: int
    bytes_in: int
    bytes_out: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "path": self.path,
            "variant": self.variant,
            "width": self.width,
            "height": self.height,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
        }


@dataclass
class ProductResult:
    """What processing made of a product's images, one slot per source image."""

    paths: list[str | None]
    errors: list[ImageError] = field(default_factory=list)
    details: list[ImageDetail] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "failed" if self.errors else "done"


class ProductRows:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def claim(self, product_id: int) -> list[str] | None:
        """Mark ``processing`` (attempts + 1); the image URLs, or None: skip it."""
        statement = (
            sa.update(Product)
            .where(Product.product_id == product_id, Product.status.in_(UNFINISHED))
            .values(status="processing", attempts=Product.attempts + 1, updated_at=sa.func.now())
            .returning(Product.product_images)
        )
        with self.engine.begin() as connection:
            images = connection.execute(statement).scalar_one_or_none()
        return list(images) if images is not None else None

    def finish(self, product_id: int, result: ProductResult) -> None:
        """The one UPDATE that publishes the result."""
        statement = (
            sa.update(Product)
            .where(Product.product_id == product_id)
            .values(
                compressed_product_images=result.paths,
                image_errors=[e.as_dict() for e in result.errors],
                image_details=[d.as_dict() for d in result.details],
                status=result.status,
                processed_at=sa.func.now(),
                updated_at=sa.func.now(),
            )
        )
        with self.engine.begin() as connection:
            connection.execute(statement)

    def fail_unfinished(self, product_id: int, reason: str, message: str) -> bool:
        """Mark an unfinished product failed, every image with ``reason``; False if none."""
        with self.engine.begin() as connection:
            images = connection.execute(
                sa.select(Product.product_images)
                .where(Product.product_id == product_id, Product.status.in_(UNFINISHED))
                .with_for_update()
            ).scalar_one_or_none()
            if images is None:
                return False
            errors = [ImageError(i, url, reason, message).as_dict() for i, url in enumerate(images)]
            connection.execute(
                sa.update(Product)
                .where(Product.product_id == product_id)
                .values(
                    compressed_product_images=[None] * len(images),
                    image_errors=errors,
                    image_details=[],
                    status="failed",
                    processed_at=sa.func.now(),
                    updated_at=sa.func.now(),
                )
            )
        return True

    def requeue_stale(self, older_than_seconds: float, topic: str, limit: int = 100) -> list[int]:
        """Products unfinished and unchanged for ``older_than_seconds``, given a new
        ``product.created`` (at most ``limit`` per call); their ids."""
        cutoff = sa.func.now() - sa.func.make_interval(0, 0, 0, 0, 0, 0, older_than_seconds)
        with self.engine.begin() as connection:
            ids = list(
                connection.execute(
                    sa.select(Product.product_id)
                    .where(Product.status.in_(UNFINISHED), Product.updated_at < cutoff)
                    .order_by(Product.product_id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                ).scalars()
            )
            if not ids:
                return []
            connection.execute(
                sa.update(Product)
                .where(Product.product_id.in_(ids))
                .values(updated_at=sa.func.now())
            )
            for product_id in ids:
                event = CloudEvent(
                    type="product.created",
                    source="/switchyard/image-worker",
                    subject=str(product_id),
                    data={"product_id": product_id, "requeued": True},
                )
                add_event(connection, topic, event, key=str(product_id))
        return ids

    def count_by_status(self) -> dict[str, int]:
        """Products per status (every status, 0 when none)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(Product.status, sa.func.count()).group_by(Product.status)
            ).all()
        counts = dict.fromkeys(STATUSES, 0)
        counts.update({str(status): int(count) for status, count in rows})
        return counts
