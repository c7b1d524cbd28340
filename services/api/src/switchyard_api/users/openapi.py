"""The users part of the OpenAPI document."""

from __future__ import annotations

from typing import Any

from switchyard_api.openapi_parts import (
    PAGE_PARAMETERS,
    json_content,
    page_of,
    problem_response,
    ref,
    schema_of,
)
from switchyard_api.users.schemas import UserCreate, UserOut, UserPatch

_ID: list[dict[str, Any]] = [
    {"name": "user_id", "in": "path", "required": True, "schema": {"type": "integer"}}
]
_ADMIN: list[dict[str, list[str]]] = [{"adminToken": []}]

OPENAPI: dict[str, Any] = {
    "paths": {
        "/users": {
            "post": {
                "summary": "Create a user; publishes user.created", "tags": ["users"],
                "requestBody": {"required": True, "content": json_content(ref("UserCreate"))},
                "responses": {
                    "201": {"description": "created", "content": json_content(ref("User"))},
                    "400": problem_response("malformed JSON or invalid fields"),
                    "413": problem_response("body over the limit"),
                },
            },
            "get": {
                "summary": "List users by id", "tags": ["users"], "parameters": PAGE_PARAMETERS,
                "responses": {"200": {"description": "a page",
                                      "content": json_content(page_of("User"))},
                              "400": problem_response("bad limit or cursor")},
            },
        },
        "/users/{user_id}": {
            "get": {
                "summary": "A user; served from Redis after the first read", "tags": ["users"],
                "parameters": _ID,
                "responses": {
                    "200": {"description": "the user; header X-Cache: HIT or MISS",
                            "headers": {"X-Cache": {"schema": {"enum": ["HIT", "MISS"]}}},
                            "content": json_content(ref("User"))},
                    "404": problem_response("no such user"),
                },
            },
            "patch": {
                "summary": "Change fields; publishes user.updated; cache invalidated first",
                "tags": ["users"], "parameters": _ID,
                "requestBody": {"required": True, "content": json_content(ref("UserPatch"))},
                "responses": {
                    "200": {"description": "the user", "content": json_content(ref("User"))},
                    "400": problem_response("invalid fields"),
                    "404": problem_response("no such user"),
                },
            },
            "delete": {
                "summary": "Delete; publishes user.deleted (admin)", "tags": ["users"],
                "parameters": _ID, "security": _ADMIN,
                "responses": {
                    "204": {"description": "deleted"},
                    "401": problem_response("no or wrong admin token"),
                    "404": problem_response("no such user"),
                },
            },
        },
    },
    "schemas": {
        "UserCreate": schema_of(UserCreate),
        "UserPatch": schema_of(UserPatch),
        "User": schema_of(UserOut, "serialization"),
    },
}
