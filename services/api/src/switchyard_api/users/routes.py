"""``/users``: create, read (cached), list, patch, delete."""

from __future__ import annotations

import orjson
from flask import Blueprint, Response, current_app

from switchyard.kafka.topics import USERS, topic_name
from switchyard_api.http.auth import require_admin
from switchyard_api.http.pagination import PageQuery, decode_cursor, page
from switchyard_api.http.problems import Problem, invalid_fields
from switchyard_api.http.request_context import current_request_id
from switchyard_api.http.responses import json_response, raw_json_response
from switchyard_api.http.validation import parse_body, parse_query
from switchyard_api.services import ApiServices
from switchyard_api.users.cache import UserCache
from switchyard_api.users.schemas import UserCreate, UserPatch
from switchyard_api.users.store import UserStore

users = Blueprint("users", __name__)


def _build(services: ApiServices) -> tuple[UserStore, UserCache]:
    return (
        UserStore(services.engine, topic_name(services.settings, USERS)),
        UserCache(services.redis, services.settings.redis_key_prefix,
                  services.settings.api.user_cache_ttl_seconds),
    )


def _parts() -> tuple[UserStore, UserCache]:
    services: ApiServices = current_app.extensions["switchyard"]
    return services.part("users", _build)


def _not_found(user_id: int) -> Problem:
    return Problem(404, f"There is no user with id {user_id}.", slug="not-found")


@users.post("/users")
def create_user() -> Response:
    body = parse_body(UserCreate)
    store, _ = _parts()
    user = store.create(body.model_dump(), current_request_id())
    return json_response(user, 201, {"Location": f"/users/{user['id']}"})


@users.get("/users/<int:user_id>")
def get_user(user_id: int) -> Response:
    store, cache = _parts()
    cached, generation = cache.get(user_id)
    if cached is not None:
        return raw_json_response(cached, headers={"X-Cache": "HIT"})
    user = store.get(user_id)
    if user is None:
        raise _not_found(user_id)
    body = orjson.dumps(user)
    cache.fill(user_id, generation, body)
    return raw_json_response(body, headers={"X-Cache": "MISS"})


@users.get("/users")
def list_users() -> Response:
    query = parse_query(PageQuery)
    position = decode_cursor(query.cursor) or {"after": 0}
    after = position.get("after")
    if not isinstance(after, int) or after < 0:
        raise invalid_fields([{"field": "cursor", "message": "not a cursor this API issued"}])
    store, _ = _parts()
    items = store.list(after, query.limit + 1)
    more = len(items) > query.limit
    items = items[: query.limit]
    return json_response(page(items, query.limit, {"after": items[-1]["id"]} if more else None))


@users.patch("/users/<int:user_id>")
def patch_user(user_id: int) -> Response:
    body = parse_body(UserPatch)
    store, cache = _parts()
    user = store.update(user_id, body.model_dump(exclude_unset=True), current_request_id())
    if user is None:
        raise _not_found(user_id)
    cache.invalidate(user_id)
    return json_response(user)


@users.delete("/users/<int:user_id>")
@require_admin
def delete_user(user_id: int) -> Response:
    store, cache = _parts()
    if not store.delete(user_id, current_request_id()):
        raise _not_found(user_id)
    cache.invalidate(user_id)
    return Response(status=204)
