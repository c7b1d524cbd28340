"""``/targets``: register, read (with status and uptime), list, change, delete, history.

Guarantee: a stored target always has ``timeout_seconds`` not above ``interval_seconds``
(a PATCH writes the two together, so racing PATCHes leave one validated pair); a name
names one target (a second one is a 409, never a second row); PostgreSQL not answering is
a 503 problem, never a 500.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, current_app

from switchyard.targets import spec, store
from switchyard.targets.records import Check, TargetRow
from switchyard_api.http.contract import Out, Reply, endpoint
from switchyard_api.http.database import UNAVAILABLE, answer_503_when_postgres_is_down
from switchyard_api.http.pagination import cut_page
from switchyard_api.http.problems import Problem, invalid_fields
from switchyard_api.services import ApiServices
from switchyard_api.targets.schemas import (
    HistoryQuery,
    Target,
    TargetCheck,
    TargetCheckPage,
    TargetCreate,
    TargetId,
    TargetListQuery,
    TargetPage,
    TargetPatch,
    history_cursor,
    read_history_cursor,
)

targets = Blueprint("targets", __name__)
answer_503_when_postgres_is_down(targets)
TAGS = ("targets",)
NO_TARGET = "no target with this id"
TAKEN = "a target with this name exists"
_BY_ID = {"operationId": "get_target", "parameters": {"target_id": "$response.body#/id"}}
# Stateful tests (and readers) follow these from a registered target to what can be done.
_LINKS = {
    "GetTarget": _BY_ID,
    "PatchTarget": {**_BY_ID, "operationId": "patch_target"},
    "DeleteTarget": {**_BY_ID, "operationId": "delete_target"},
    "GetTargetHistory": {**_BY_ID, "operationId": "get_target_history"},
}


def _engine() -> sa.Engine:
    services: ApiServices = current_app.extensions["switchyard"]
    return services.engine


def _not_found(target_id: int) -> Problem:
    return Problem(404, f"There is no target with id {target_id}.", slug="not-found")


def _taken(name: str) -> Problem:
    return Problem(409, f"A target named {name!r} exists.", slug="target-exists")


def _render(row: TargetRow, uptime: dict[int, float]) -> Target:
    return Target.model_validate({**dataclasses.asdict(row), "uptime_24h": uptime.get(row.id)})


def _one(engine: sa.Engine, row: TargetRow) -> Target:
    return _render(row, store.uptime(engine, [row.id]))


@endpoint(
    targets,
    "POST",
    "/targets",
    summary="Register a target; the checker probes it within a second",
    description="`timeout_seconds` must not be above `interval_seconds` (a 400 on "
    "`timeout_seconds`); left out, it is 5, or `interval_seconds` when that is shorter. "
    "A name already registered is a 409.",
    tags=TAGS,
    body=TargetCreate,
    responses={
        201: Out(
            "registered; Location names it",
            Target,
            links=_LINKS,
            headers={"Location": {"schema": {"type": "string"}}},
        )
    },
    problems={409: TAKEN, 503: UNAVAILABLE},
)
def create_target(body: TargetCreate) -> Reply:
    try:
        row = store.create_target(_engine(), body.to_spec())
    except store.TargetExists:
        raise _taken(body.name) from None
    return Reply(_render(row, {}), 201, {"Location": f"/targets/{row.id}"})


@endpoint(
    targets,
    "GET",
    "/targets/<int:target_id>",
    summary="A target: its declaration, current status, last check, uptime over 24 h",
    tags=TAGS,
    path={"target_id": TargetId},
    responses={200: Out("the target", Target)},
    problems={404: NO_TARGET, 503: UNAVAILABLE},
)
def get_target(target_id: int) -> Target:
    engine = _engine()
    row = store.get_target(engine, target_id)
    if row is None:
        raise _not_found(target_id)
    return _one(engine, row)


@endpoint(
    targets,
    "GET",
    "/targets",
    summary="List targets by id; optionally those in one status",
    tags=TAGS,
    query=TargetListQuery,
    responses={200: Out("a page", TargetPage)},
    problems={503: UNAVAILABLE},
)
def list_targets(query: TargetListQuery) -> TargetPage:
    engine = _engine()
    after = int(query.cursor) if query.cursor else None
    rows = store.list_targets(engine, after_id=after, limit=query.limit + 1, status=query.status)
    items, cursor = cut_page(rows, query.limit, lambda row: str(row.id))
    uptime = store.uptime(engine, [row.id for row in items])  # one query for the page
    return TargetPage(items=[_render(row, uptime) for row in items], next_cursor=cursor)


def _timing(current: TargetRow, changes: dict[str, Any]) -> None:
    """Check the interval and timeout the target would have, and write them as a pair."""
    sent = {"interval_seconds", "timeout_seconds"} & set(changes)
    if not sent:
        return
    interval = changes.setdefault("interval_seconds", current.interval_seconds)
    timeout = changes.setdefault("timeout_seconds", current.timeout_seconds)
    problem = spec.timing_problem(interval, timeout)
    if problem is None:
        return
    if "timeout_seconds" in sent and timeout != current.timeout_seconds:
        error = {"field": "timeout_seconds", "message": problem}
    else:
        error = {
            "field": "interval_seconds",
            "message": f"must not be below timeout_seconds ({timeout:g}); "
            "change timeout_seconds too",
        }
    raise invalid_fields([error])


@endpoint(
    targets,
    "PATCH",
    "/targets/<int:target_id>",
    summary="Change declared fields; the checker applies it within a second",
    description="Status, counters and history stay. `timeout_seconds` must not end up "
    "above `interval_seconds` (a 400 naming the field sent). A name another target has is "
    "a 409.",
    tags=TAGS,
    path={"target_id": TargetId},
    admin=True,
    body=TargetPatch,
    responses={200: Out("the target, changed", Target)},
    problems={404: NO_TARGET, 409: TAKEN, 503: UNAVAILABLE},
)
def patch_target(target_id: int, body: TargetPatch) -> Target:
    engine = _engine()
    current = store.get_target(engine, target_id)
    if current is None:
        raise _not_found(target_id)
    changes = body.model_dump(exclude_unset=True)
    _timing(current, changes)
    try:
        row = store.update_target(engine, target_id, changes)
    except store.TargetExists:
        raise _taken(changes["name"]) from None
    if row is None:
        raise _not_found(target_id)
    return _one(engine, row)


@endpoint(
    targets,
    "DELETE",
    "/targets/<int:target_id>",
    summary="Delete a target; the checker stops probing it within a second",
    description="Its checks stay until retention removes them.",
    tags=TAGS,
    path={"target_id": TargetId},
    admin=True,
    responses={204: Out("deleted")},
    problems={404: NO_TARGET, 503: UNAVAILABLE},
)
def delete_target(target_id: int) -> Reply:
    if not store.delete_target(_engine(), target_id):
        raise _not_found(target_id)
    return Reply(status=204)


def _check_cursor(check: Check) -> str:
    return history_cursor(check.checked_at, check.id)


@endpoint(
    targets,
    "GET",
    "/targets/<int:target_id>/history",
    summary="A target's checks, newest first",
    tags=TAGS,
    path={"target_id": TargetId},
    query=HistoryQuery,
    responses={200: Out("a page of checks", TargetCheckPage)},
    problems={404: NO_TARGET, 503: UNAVAILABLE},
)
def get_target_history(target_id: int, query: HistoryQuery) -> TargetCheckPage:
    engine = _engine()
    if store.get_target(engine, target_id) is None:
        raise _not_found(target_id)
    before = read_history_cursor(query.cursor) if query.cursor else None
    rows = store.history(engine, target_id, before=before, limit=query.limit + 1)
    items, cursor = cut_page(rows, query.limit, _check_cursor)
    return TargetCheckPage(
        items=[TargetCheck.model_validate(row, from_attributes=True) for row in items],
        next_cursor=cursor,
    )
