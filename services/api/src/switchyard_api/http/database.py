"""PostgreSQL not answering, as an endpoint's own 503 (SPEC section 3).

Guarantee: on a blueprint passed to :func:`answer_503_when_postgres_is_down`, a
connection or timeout error from PostgreSQL is a 503 problem with ``Retry-After``, never
a 500; a 503 after a write may hide a commit, so clients retry idempotently.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, Response, request

from switchyard.logging import get_logger
from switchyard_api.http.problems import Problem

log = get_logger(__name__)
UNAVAILABLE = "PostgreSQL did not answer; retry (see Retry-After)"


def answer_503_when_postgres_is_down(blueprint: Blueprint) -> None:
    @blueprint.errorhandler(sa.exc.OperationalError)
    @blueprint.errorhandler(sa.exc.InterfaceError)
    @blueprint.errorhandler(sa.exc.TimeoutError)
    def _unavailable(error: Exception) -> Response:
        log.error("request failed in PostgreSQL", path=request.path, error=str(error)[:300])
        return Problem(
            503,
            "PostgreSQL did not answer; retry the request.",
            slug="database-unavailable",
            headers={"Retry-After": "1"},
        ).to_response()
