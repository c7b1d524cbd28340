"""The API's side of targets: create, read, change, delete, history, apply a file.

Guarantee: every write commits with a ``NOTIFY switchyard_targets`` naming the target,
so the checker replicas pick a change up within a second without a restart; a name is
unique (a second create of it is refused, never a second target).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from switchyard.db.models import targets as models
from switchyard.targets.records import NOTIFY_CHANNEL, Check, TargetRow, TargetSpec

targets = cast(sa.Table, models.Target.__table__)
checks = cast(sa.Table, models.TargetCheck.__table__)
_SPEC_FIELDS = tuple(field.name for field in dataclasses.fields(TargetSpec))


class TargetExists(Exception):
    """A target with this name exists (HTTP 409)."""


def as_target(row: Any) -> TargetRow:
    values = {field.name: getattr(row, field.name) for field in dataclasses.fields(TargetRow)}
    if values["incident_id"] is not None:
        values["incident_id"] = str(values["incident_id"])
    return TargetRow(**values)


def _notify(connection: sa.Connection, target_id: int) -> None:
    connection.execute(sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, str(target_id))))


def create_target(engine: sa.Engine, spec: TargetSpec) -> TargetRow:
    with engine.begin() as connection:
        row = connection.execute(
            pg.insert(targets)
            .values(**dataclasses.asdict(spec))
            .on_conflict_do_nothing(index_elements=[targets.c.name])
            .returning(targets)
        ).one_or_none()
        if row is None:
            raise TargetExists(f"a target named {spec.name!r} exists")
        _notify(connection, row.id)
    return as_target(row)


def get_target(engine: sa.Engine, target_id: int) -> TargetRow | None:
    with engine.connect() as connection:
        row = connection.execute(sa.select(targets).where(targets.c.id == target_id)).one_or_none()
    return as_target(row) if row is not None else None


def uptime(engine: sa.Engine, target_ids: Sequence[int], hours: float = 24) -> dict[int, float]:
    """Share of ``up`` checks over the last ``hours``, per target that has checks."""
    if not target_ids:
        return {}
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(
                checks.c.target_id,
                sa.func.avg(sa.case((checks.c.status == "up", 1.0), else_=0.0)),
            )
            .where(
                checks.c.target_id.in_(list(target_ids)),
                checks.c.checked_at >= sa.func.now() - sa.func.make_interval(0, 0, 0, 0, hours),
            )
            .group_by(checks.c.target_id)
        ).all()
    return {target_id: float(share) for target_id, share in rows}


def list_targets(
    engine: sa.Engine, *, after_id: int | None, limit: int, status: str | None = None
) -> list[TargetRow]:
    """By id, at most ``limit`` with ``id > after_id`` (the cursor)."""
    query = sa.select(targets).order_by(targets.c.id).limit(limit)
    if after_id is not None:
        query = query.where(targets.c.id > after_id)
    if status is not None:
        query = query.where(targets.c.status == status)
    with engine.connect() as connection:
        return [as_target(row) for row in connection.execute(query)]


def _name_taken(exc: sa.exc.IntegrityError) -> bool:
    """The unique name index refused a row (a racing create or rename took it first)."""
    diag = getattr(exc.orig, "diag", None)
    return getattr(diag, "constraint_name", None) == "uq_targets_name"


def update_target(
    engine: sa.Engine, target_id: int, changes: Mapping[str, Any]
) -> TargetRow | None:
    """Change declared fields (those of :class:`TargetSpec`); its status and counters
    stay. None if there is no such target; :class:`TargetExists` for a taken name."""
    unknown = set(changes) - set(_SPEC_FIELDS)
    if unknown:
        raise ValueError(f"not a target field: {', '.join(sorted(unknown))}")
    try:
        return _update(engine, target_id, changes)
    except sa.exc.IntegrityError as exc:
        if _name_taken(exc):
            raise TargetExists(f"a target named {changes['name']!r} exists") from None
        raise


def _update(engine: sa.Engine, target_id: int, changes: Mapping[str, Any]) -> TargetRow | None:
    with engine.begin() as connection:
        if "name" in changes:
            taken = connection.execute(
                sa.select(targets.c.id).where(
                    targets.c.name == changes["name"], targets.c.id != target_id
                )
            ).first()
            if taken is not None:
                raise TargetExists(f"a target named {changes['name']!r} exists")
        row = connection.execute(
            sa.update(targets)
            .where(targets.c.id == target_id)
            .values(**changes, version=targets.c.version + 1, updated_at=sa.func.now())
            .returning(targets)
        ).one_or_none()
        if row is not None:
            _notify(connection, target_id)
    return as_target(row) if row is not None else None


def delete_target(engine: sa.Engine, target_id: int) -> bool:
    with engine.begin() as connection:
        deleted = connection.execute(sa.delete(targets).where(targets.c.id == target_id))
        if deleted.rowcount:
            _notify(connection, target_id)
    return bool(deleted.rowcount)


def history(
    engine: sa.Engine,
    target_id: int,
    *,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[Check]:
    """Newest first; ``before`` is the ``(checked_at, id)`` of the last check seen."""
    query = (
        sa.select(checks)
        .where(checks.c.target_id == target_id)
        .order_by(checks.c.checked_at.desc(), checks.c.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(sa.tuple_(checks.c.checked_at, checks.c.id) < sa.tuple_(*before))
    with engine.connect() as connection:
        return [
            Check(
                id=str(row.id),
                target_id=row.target_id,
                checked_at=row.checked_at,
                status=row.status,
                latency_ms=row.latency_ms,
                status_code=row.status_code,
                error=row.error,
            )
            for row in connection.execute(query)
        ]


@dataclass(frozen=True)
class Plan:
    """What :func:`apply` does (or did) to make the targets match a file, by name."""

    create: list[str]
    update: list[str]
    delete: list[str]
    unchanged: int


def apply(engine: sa.Engine, wanted: Sequence[TargetSpec], *, dry_run: bool) -> Plan:
    """Create, update and delete targets so that they are exactly ``wanted`` (matched by
    name), in one transaction; ``dry_run`` only computes the plan. A target the API
    created meanwhile with a name the file creates: :class:`TargetExists`, nothing
    applied."""
    try:
        return _apply(engine, wanted, dry_run=dry_run)
    except sa.exc.IntegrityError as exc:
        if _name_taken(exc):
            raise TargetExists("targets changed during the apply; nothing applied") from None
        raise


def _lock_in_id_order(connection: sa.Connection, ids: list[int]) -> None:
    """Row locks in ascending id, as the health-checker's progress writes take them: two
    transactions locking the same rows in different orders deadlock."""
    if ids:
        connection.execute(
            sa.select(targets.c.id)
            .where(targets.c.id.in_(ids))
            .order_by(targets.c.id)
            .with_for_update()
        ).all()


def _apply(engine: sa.Engine, wanted: Sequence[TargetSpec], *, dry_run: bool) -> Plan:
    names = [spec.name for spec in wanted]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise ValueError(f"names declared twice: {', '.join(duplicated)}")
    by_name = {spec.name: spec for spec in wanted}
    with engine.begin() as connection:
        # One apply at a time: two racing applies would each delete the other's targets.
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(0x7461_7267)))
        current = {row.name: as_target(row) for row in connection.execute(sa.select(targets))}
        create = [name for name in by_name if name not in current]
        delete = sorted(name for name in current if name not in by_name)
        update = sorted(
            name for name in by_name if name in current and current[name].spec() != by_name[name]
        )
        plan = Plan(create, update, delete, len(by_name) - len(create) - len(update))
        if dry_run:
            return plan
        _lock_in_id_order(connection, [current[name].id for name in (*delete, *update)])
        for name in delete:
            connection.execute(sa.delete(targets).where(targets.c.id == current[name].id))
            _notify(connection, current[name].id)
        for name in update:
            connection.execute(
                sa.update(targets)
                .where(targets.c.id == current[name].id)
                .values(
                    **dataclasses.asdict(by_name[name]),
                    version=targets.c.version + 1,
                    updated_at=sa.func.now(),
                )
            )
            _notify(connection, current[name].id)
        for name in create:
            new_id = connection.execute(
                sa.insert(targets)
                .values(**dataclasses.asdict(by_name[name]))
                .returning(targets.c.id)
            ).scalar_one()
            _notify(connection, new_id)
    return plan
