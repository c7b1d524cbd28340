"""``/users``: create, read (cached), list, patch, delete."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

from switchyard.kafka.topics import USERS, topic_name
from switchyard_api.http.contract import Out, Reply, endpoint
from switchyard_api.http.pagination import cut_page
from switchyard_api.http.problems import Problem
from switchyard_api.http.request_context import current_request_id
from switchyard_api.services import ApiServices
from switchyard_api.users.cache import UserCache
from switchyard_api.users.schemas import User, UserCreate, UserListQuery, UserPage, UserPatch
from switchyard_api.users.store import UserStore

users = Blueprint("users", __name__)
TAGS = ("users",)
NO_USER = "no such user"
_BY_ID = {"operationId": "get_user", "parameters": {"user_id": "$response.body#/id"}}
# Stateful tests (and readers) follow these from a created user to its other operations.
_LINKS = {
    "GetUser": _BY_ID,
    "PatchUser": {**_BY_ID, "operationId": "patch_user"},
    "DeleteUser": {**_BY_ID, "operationId": "delete_user"},
    # A product needs an existing user: the rest of its body is generated.
    "CreateProduct": {
        "operationId": "create_product",
        "requestBody": {"user_id": "$response.body#/id"},
    },
}


def _build(services: ApiServices) -> tuple[UserStore, UserCache]:
    return (
        UserStore(services.engine, topic_name(services.settings, USERS)),
        UserCache(
            services.redis,
            services.settings.redis_key_prefix,
            services.settings.api.user_cache_ttl_seconds,
        ),
    )


def _parts() -> tuple[UserStore, UserCache]:
    services: ApiServices = current_app.extensions["switchyard"]
    return services.part("users", _build)


def _not_found(user_id: int) -> Problem:
    return Problem(404, f"There is no user with id {user_id}.", slug="not-found")


@endpoint(
    users,
    "POST",
    "/users",
    summary="Create a user; publishes user.created",
    tags=TAGS,
    body=UserCreate,
    responses={
        201: Out(
            "created; Location names it",
            User,
            links=_LINKS,
            headers={"Location": {"schema": {"type": "string"}}},
        )
    },
)
def create_user(body: UserCreate) -> Reply:
    store, _ = _parts()
    user = store.create(body.model_dump(), current_request_id())
    return Reply(user, 201, {"Location": f"/users/{user['id']}"})


_CACHE_HEADER = {"X-Cache": {"required": True, "schema": {"enum": ["HIT", "MISS"]}}}


@endpoint(
    users,
    "GET",
    "/users/<int:user_id>",
    tags=TAGS,
    summary="A user; served from Redis after the first read",
    responses={
        200: Out("the user; X-Cache says whether Redis served it", User, headers=_CACHE_HEADER)
    },
    problems={404: NO_USER},
)
def get_user(user_id: int) -> Reply:
    store, cache = _parts()
    cached, generation = cache.get(user_id)
    if cached is not None:
        # Serialised by User when it was stored.
        return Reply(cached, headers={"X-Cache": "HIT"}, raw=True)
    user = store.get(user_id)
    if user is None:
        raise _not_found(user_id)
    body = User.model_validate(user).model_dump_json().encode()
    cache.fill(user_id, generation, body)
    return Reply(body, headers={"X-Cache": "MISS"}, raw=True)


@endpoint(
    users,
    "GET",
    "/users",
    summary="List users by id",
    tags=TAGS,
    query=UserListQuery,
    responses={200: Out("a page", UserPage)},
)
def list_users(query: UserListQuery) -> UserPage:
    store, _ = _parts()
    after = int(query.cursor) if query.cursor else 0
    items, cursor = cut_page(store.list(after, query.limit + 1), query.limit, _id_cursor)
    return UserPage(items=[User.model_validate(item) for item in items], next_cursor=cursor)


def _id_cursor(user: dict[str, Any]) -> str:
    return str(user["id"])


@endpoint(
    users,
    "PATCH",
    "/users/<int:user_id>",
    tags=TAGS,
    body=UserPatch,
    summary="Change fields; publishes user.updated; cache invalidated first",
    responses={200: Out("the user", User)},
    problems={404: NO_USER},
)
def patch_user(user_id: int, body: UserPatch) -> User:
    store, cache = _parts()
    user = store.update(user_id, body.model_dump(exclude_unset=True), current_request_id())
    if user is None:
        raise _not_found(user_id)
    cache.invalidate(user_id)
    return User.model_validate(user)


@endpoint(
    users,
    "DELETE",
    "/users/<int:user_id>",
    summary="Delete; publishes user.deleted",
    tags=TAGS,
    admin=True,
    responses={204: Out("deleted")},
    problems={404: NO_USER},
)
def delete_user(user_id: int) -> Reply:
    store, cache = _parts()
    if not store.delete(user_id, current_request_id()):
        raise _not_found(user_id)
    cache.invalidate(user_id)
    return Reply(status=204)
