"""Per-request plumbing: request id, logging context, trace span and HTTP metrics.

Guarantees: every response carries ``X-Request-ID`` (the client's when acceptable, else a
new 32-hex-digit id), every log line written while handling the request carries it, and
every request is counted in ``http_requests_total`` and timed in
``http_request_duration_seconds`` by method, route and status.

Every endpoint pays for this frame, so it is kept cheap (``switchyard bench ingest``
compares ``GET /healthz`` with a bare Flask GET): context-locals are resolved once per
hook, labelled metric children are looked up once per (method, route, status), new ids
need no system call, and the trace hooks exist only when tracing is on.
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
from typing import Any, cast

from flask import Flask, Response, g, request
from prometheus_client import Counter, Histogram

from switchyard import metrics, tracing
from switchyard.logging import bind_context, clear_context, get_logger

LOGGER_NAME = "switchyard_api.requests"
log = get_logger(LOGGER_NAME)

REQUEST_ID = "X-Request-ID"
_REQUEST_ID_ENVIRON = "HTTP_X_REQUEST_ID"
ACCEPTABLE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def current_request_id() -> str:
    return str(g.request_id)


# A request id must be unique, not secret: this generator needs no system call per id,
# where ``uuid4`` reads ``os.urandom``, which drops the GIL and queues the thread to take
# it back. Its own instance (never the one event ids could come from), reseeded from the
# system's entropy in every forked worker.
_request_ids = random.Random()
os.register_at_fork(after_in_child=_request_ids.seed)


def new_request_id() -> str:
    """32 random hex digits, like ``uuid4().hex``."""
    return f"{_request_ids.getrandbits(128):032x}"


def _unproxied(proxy: Any) -> Any:
    """The object behind a Flask context-local: each access through the proxy is a lookup."""
    return proxy._get_current_object()


class _Instruments:
    """The labelled children of the HTTP metrics, created once per label set."""

    def __init__(self) -> None:
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def record(self, method: str, route: str, status: int, elapsed: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                metrics.http_requests_total.labels(method, route, str(status)),
                metrics.http_request_duration_seconds.labels(method, route),
            )
        children[0].inc()
        children[1].observe(elapsed)


def install(app: Flask, service: str) -> None:
    instruments = _Instruments()
    stdlib_logger = logging.getLogger(LOGGER_NAME)

    @app.before_request
    def start() -> None:
        state, current = _unproxied(g), _unproxied(request)
        given = current.environ.get(_REQUEST_ID_ENVIRON)
        request_id = given if given and ACCEPTABLE_REQUEST_ID.match(given) else new_request_id()
        state.request_id = request_id
        state.started = time.perf_counter()
        clear_context()
        bind_context(service=service, request_id=request_id)

    @app.after_request
    def finish(response: Response) -> Response:
        state, current = _unproxied(g), _unproxied(request)
        # Absent when a hook before ours failed: the response still gets an id.
        response.headers[REQUEST_ID] = getattr(state, "request_id", None) or new_request_id()
        rule = current.url_rule
        route = rule.rule if rule is not None else "<unmatched>"
        started = getattr(state, "started", None)
        elapsed = time.perf_counter() - started if started is not None else 0.0
        status = response.status_code
        instruments.record(current.method, route, status, elapsed)
        if status >= 400:
            # Counted in metrics, and worth a line each: a 5xx is our failure, a 4xx the
            # client's. A routine refusal (a business rule's everyday answer: sold out,
            # already claimed, thousands a second in a flash sale) only at debug level.
            level = (
                logging.ERROR
                if status >= 500
                else logging.DEBUG
                if getattr(response, "routine", False)
                else logging.INFO
            )
            # Checked first: even a structlog call that is dropped costs more than the
            # rest of this hook.
            if stdlib_logger.isEnabledFor(level):
                log.log(
                    level,
                    "request refused",
                    method=current.method,
                    path=current.path,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                )
        return response

    if tracing.enabled():
        _install_tracing(app)


def _install_tracing(app: Flask) -> None:
    @app.before_request
    def open_span() -> None:
        g.span = tracing.span(f"{request.method} {request.path}")
        cast(Any, g.span).__enter__()

    @app.teardown_request
    def close_span(_: BaseException | None) -> None:
        span = g.pop("span", None)
        if span is not None:
            span.__exit__(None, None, None)
