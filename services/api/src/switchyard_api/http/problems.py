"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import orjson
from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from switchyard.logging import get_logger

log = get_logger(__name__)
PROBLEM_TYPE_BASE = "/problems/"
PROBLEM_JSON = "application/problem+json"
# HTTPStatus(status) is an enum lookup by value, slow enough to show in a refusal's profile.
_PHRASES = {status.value: status.phrase for status in HTTPStatus}


class ProblemResponse(Response):
    """A problem document; ``routine`` tells the request log how loud to be."""

    routine = False


class Problem(Exception):
    """Raise anywhere in a request to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        slug: str | None = None,
        errors: Sequence[Mapping[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        routine: bool = False,
    ) -> None:
        super().__init__(detail)
        # A business rule's everyday answer (sold out, already claimed): logged at debug.
        self.routine = routine
        self.status = status
        self.detail = detail
        self.title = title or _PHRASES.get(status) or HTTPStatus(status).phrase
        self.slug = slug
        self.errors = list(errors) if errors else None
        self.headers = dict(headers or {})

    def to_response(self) -> ProblemResponse:
        body: dict[str, Any] = {
            "type": f"{PROBLEM_TYPE_BASE}{self.slug}" if self.slug else "about:blank",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors is not None:
            body["errors"] = self.errors
        response = ProblemResponse(
            orjson.dumps(body),
            status=self.status,
            headers=self.headers or None,
            content_type=PROBLEM_JSON,
        )
        response.routine = self.routine
        return response


def invalid_fields(errors: Sequence[Mapping[str, str]], detail: str | None = None) -> Problem:
    return Problem(
        400,
        detail or f"{len(errors)} field(s) are invalid",
        title="Invalid fields",
        slug="invalid-fields",
        errors=errors,
    )


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(Problem, lambda problem: problem.to_response())

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        headers = dict(error.get_headers())
        headers.pop("Content-Type", None)
        detail = {
            404: "No resource at this path.",
            405: "This path does not accept that method.",
            413: "The request body is larger than the limit.",
        }.get(status, error.description or HTTPStatus(status).phrase)
        return Problem(status, detail, headers=headers).to_response()

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        log.exception("unhandled error", error_type=type(error).__name__)
        return Problem(500, "Something went wrong on our side; it has been logged.").to_response()
