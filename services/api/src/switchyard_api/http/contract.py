"""Each endpoint is declared once, and that declaration is both its behaviour and its contract.

``@endpoint(...)`` registers the Flask route and an :class:`Operation`. The view receives its
body and query already validated by the declared models (or a 400 naming each bad field),
and what it returns goes out through the response model declared for that status, so a
response that leaves its schema is a 500 here, never a silent drift. ``openapi.py`` builds
the OpenAPI 3.1 document from :data:`OPERATIONS` and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from flask import Blueprint, Response
from pydantic import BaseModel, TypeAdapter, ValidationError

from switchyard_api.http.auth import require_admin
from switchyard_api.http.problems import Problem
from switchyard_api.http.validation import parse_body, parse_query

View = Callable[..., Any]
_CONVERTER = re.compile(r"<(?:(\w+):)?(\w+)>")


@dataclass(frozen=True)
class Out:
    """One documented response: its body's type (None: no body), headers and links."""

    description: str
    model: Any = None
    headers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # name → {"operationId": ..., "parameters" | "requestBody": ...} (OpenAPI links)
    links: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    media_type: str = "application/json"


@dataclass(frozen=True)
class Body:
    """The request body's JSON type; ``parse=False`` when the view reads it itself (NDJSON)."""

    model: Any
    parse: bool = True
    other_media: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """What a view returns when it needs a status or headers; else it returns the body."""

    body: Any = None
    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    raw: bool = False  # ``body`` is JSON already serialised by this response model


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    summary: str
    tags: tuple[str, ...]
    responses: Mapping[int, Out]
    problems: Mapping[int, str]
    body: Body | None = None
    query: type[BaseModel] | None = None
    path_params: Mapping[str, Any] = field(default_factory=dict)
    admin: bool = False
    description: str | None = None


OPERATIONS: list[Operation] = []


def openapi_path(rule: str) -> tuple[str, dict[str, Any]]:
    """``/users/<int:user_id>`` → ``/users/{user_id}`` and each parameter's schema."""
    params: dict[str, Any] = {}

    def replace(match: re.Match[str]) -> str:
        converter, name = match.group(1) or "default", match.group(2)
        # werkzeug's int converter matches digits only: never a sign.
        params[name] = (
            {"type": "integer", "minimum": 0} if converter == "int" else {"type": "string"}
        )
        return "{" + name + "}"

    return _CONVERTER.sub(replace, rule), params


def endpoint(
    blueprint: Blueprint,
    method: str,
    rule: str,
    *,
    summary: str,
    tags: tuple[str, ...],
    responses: Mapping[int, Out],
    problems: Mapping[int, str] | None = None,
    body: Body | type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    path: Mapping[str, Any] | None = None,
    admin: bool = False,
    description: str | None = None,
) -> Callable[[View], Callable[..., Response]]:
    """Route ``rule`` to the view and record its contract.

    ``path`` gives a path parameter a type of its own (validated: a value it refuses
    names no resource, so 404); ``problems`` lists the problem statuses the view raises
    itself. 400 (bad body or query), 413 (body over the limit) and 401 (admin) are added
    here, because this decorator is what returns them.
    """
    body = Body(body) if isinstance(body, type) else body
    spec_path, params = openapi_path(rule)
    checkers = {name: TypeAdapter(kind) for name, kind in (path or {}).items()}
    params.update({name: adapter.json_schema() for name, adapter in checkers.items()})
    all_problems = dict(problems or {})
    if body is not None or query is not None:
        all_problems.setdefault(400, "malformed JSON or invalid fields, each named in `errors`")
    if body is not None:
        all_problems.setdefault(413, "body over the size limit")
    if admin:
        all_problems.setdefault(401, "no or wrong admin token")
    if checkers:
        all_problems.setdefault(404, "nothing by this name")
    adapters = {
        status: TypeAdapter(out.model) for status, out in responses.items() if out.model is not None
    }
    # The status a view's plain return value goes out with.
    success = min((status for status in responses if status < 300), default=200)

    def decorate(view: View) -> Callable[..., Response]:
        operation = Operation(
            method.upper(),
            spec_path,
            view.__name__,
            summary,
            tags,
            responses,
            all_problems,
            body,
            query,
            params,
            admin,
            description,
        )
        OPERATIONS.append(operation)

        @wraps(view)
        def handle(**kwargs: Any) -> Response:
            try:
                for name, checker in checkers.items():
                    try:
                        kwargs[name] = checker.validate_python(kwargs[name])
                    except ValidationError:
                        raise Problem(404, "No resource at this path.", slug="not-found") from None
                if body is not None and body.parse:
                    kwargs["body"] = parse_body(body.model)
                if query is not None:
                    kwargs["query"] = parse_query(query)
                result = view(**kwargs)
            except Problem as problem:
                # Answered here rather than through Flask's exception handling, which
                # looks the handler up by class on every raise: a refusal is an everyday
                # answer (a sold-out coupon), and should cost no more than a success.
                return problem.to_response()
            reply = result if isinstance(result, Reply) else Reply(result)
            return _render(reply, reply.status or success, responses, adapters)

        guarded = require_admin(handle) if admin else handle
        blueprint.add_url_rule(
            rule, view.__name__, guarded, methods=[method.upper()], provide_automatic_options=False
        )
        return guarded

    return decorate


def _render(
    reply: Reply,
    status: int,
    responses: Mapping[int, Out],
    adapters: Mapping[int, TypeAdapter[Any]],
) -> Response:
    out = responses.get(status)
    if out is None:
        raise RuntimeError(f"status {status} is not declared for this endpoint")
    adapter = adapters.get(status)
    if adapter is None:
        payload = b""
    elif reply.raw:
        payload = reply.body
    elif type(reply.body) is out.model:
        # An instance of the declared model was validated when it was built.
        payload = adapter.dump_json(reply.body)
    else:
        # Validating first makes a body that leaves its schema fail here, loudly.
        payload = adapter.dump_json(adapter.validate_python(reply.body))
    if not reply.headers:  # most replies: no header list to build and merge
        return Response(
            payload, status=status, content_type=out.media_type if adapter is not None else None
        )
    headers = dict(reply.headers)
    if adapter is not None:
        headers.setdefault("Content-Type", out.media_type)
    return Response(payload, status=status, headers=headers)
