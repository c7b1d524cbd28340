"""Admin endpoints: ``Authorization: Bearer <ADMIN_TOKEN>``."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from flask import current_app, request

from switchyard_api.http.problems import Problem

P = ParamSpec("P")
R = TypeVar("R")


def require_admin(view: Callable[P, R]) -> Callable[P, R]:
    @wraps(view)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        token = current_app.extensions["switchyard"].settings.admin_token
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if (
            token is None
            or scheme.lower() != "bearer"
            or not hmac.compare_digest(given.strip().encode(), token.get_secret_value().encode())
        ):
            raise Problem(
                401,
                "This endpoint needs `Authorization: Bearer <ADMIN_TOKEN>`.",
                slug="unauthorized",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return view(*args, **kwargs)

    return guarded
