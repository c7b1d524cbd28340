"""The per-request frame: request ids, the refusal log line's level, bodies read directly."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest
from flask import Blueprint, Flask
from pydantic import BaseModel

from switchyard_api.app import SwitchyardFlask
from switchyard_api.http import problems, request_context
from switchyard_api.http.contract import Out, endpoint
from switchyard_api.http.problems import Problem


class Echo(BaseModel):
    text: str


class _Recorder:
    def __init__(self) -> None:
        self.lines: list[tuple[int, str, dict[str, Any]]] = []

    def log(self, level: int, event: str, **fields: Any) -> None:
        self.lines.append((level, event, fields))

    def error(self, event: str, **fields: Any) -> None:  # the unexpected-error handler's
        self.log(logging.ERROR, event, **fields)


@pytest.fixture
def app() -> Flask:
    app = SwitchyardFlask("frame_test")
    app.config["MAX_CONTENT_LENGTH"] = 64
    request_context.install(app, "api")
    problems.register_error_handlers(app)
    routes = Blueprint("frame", __name__)

    @endpoint(
        routes,
        "POST",
        "/echo",
        summary="echo",
        tags=(),
        body=Echo,
        responses={200: Out("echoed", Echo)},
    )
    def echo(body: Echo) -> Echo:
        if body.text == "sold-out":
            raise Problem(400, "none left", slug="sold-out", routine=True)
        if body.text == "boom":
            raise Problem(503, "try later", slug="unavailable")
        return Echo(text=body.text)

    app.register_blueprint(routes)
    return app


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> _Recorder:
    recorder = _Recorder()
    monkeypatch.setattr(request_context, "log", recorder)
    logger = logging.getLogger(request_context.LOGGER_NAME)
    monkeypatch.setattr(logger, "level", logging.INFO)
    logger.manager._clear_cache()  # isEnabledFor caches per level
    return recorder


def test_routine_refusals_are_not_logged_at_info_and_other_refusals_are(
    app: Flask, recorded: _Recorder
) -> None:
    client = app.test_client()
    assert client.post("/echo", json={"text": "sold-out"}).status_code == 400
    assert recorded.lines == []
    assert client.post("/echo", json={"text": 7}).status_code == 400  # invalid field
    assert client.get("/nowhere").status_code == 404
    assert client.post("/echo", json={"text": "boom"}).status_code == 503
    levels = [(level, fields["status"]) for level, _, fields in recorded.lines]
    assert levels == [(logging.INFO, 400), (logging.INFO, 404), (logging.ERROR, 503)]


def test_routine_refusals_are_logged_at_debug(app: Flask, recorded: _Recorder) -> None:
    logging.getLogger(request_context.LOGGER_NAME).level = logging.DEBUG
    logging.getLogger(request_context.LOGGER_NAME).manager._clear_cache()
    app.test_client().post("/echo", json={"text": "sold-out"})
    assert [(level, fields["status"]) for level, _, fields in recorded.lines] == [
        (logging.DEBUG, 400)
    ]


def test_the_request_id_is_echoed_or_made(app: Flask) -> None:
    client = app.test_client()
    given = client.post("/echo", json={"text": "a"}, headers={"X-Request-ID": "abc-1"})
    assert given.headers["X-Request-ID"] == "abc-1"
    assert given.get_json() == {"text": "a"}
    refused = client.post("/echo", json={"text": "sold-out"}, headers={"X-Request-ID": "bad id!"})
    assert (
        len(refused.headers["X-Request-ID"]) == 32 and refused.headers["X-Request-ID"] != "bad id!"
    )
    assert refused.content_type == "application/problem+json"
    assert refused.get_json()["type"] == "/problems/sold-out"


def test_bodies_over_the_limit_or_chunked_still_go_through_werkzeug(app: Flask) -> None:
    client = app.test_client()
    big = b'{"text": "' + b"x" * 100 + b'"}'
    assert client.post("/echo", data=big, content_type="application/json").status_code == 413

    # No Content-Length: werkzeug reads it only when the server says the stream ends.
    streamed = client.post(
        "/echo",
        input_stream=io.BytesIO(b'{"text": "streamed"}'),
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},  # as gunicorn sets it
        content_type="application/json",
    )
    assert streamed.status_code == 200 and streamed.get_json() == {"text": "streamed"}


def test_a_chunked_body_over_the_limit_is_413_not_cut_json(app: Flask) -> None:
    oversized = app.test_client().post(
        "/echo",
        input_stream=io.BytesIO(b'{"text": "' + b"x" * 100 + b'"}'),
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
        content_type="application/json",
    )
    assert oversized.status_code == 413
