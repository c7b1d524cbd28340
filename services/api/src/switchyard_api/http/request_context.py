"""Per-request plumbing: request id, logging context, trace span and HTTP metrics."""

from __future__ import annotations

import re
import time
import uuid

from flask import Flask, Response, g, request

from switchyard import metrics, tracing
from switchyard.logging import bind_context, clear_context, get_logger

log = get_logger("switchyard_api.requests")

REQUEST_ID = "X-Request-ID"
ACCEPTABLE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def current_request_id() -> str:
    return str(g.request_id)


def install(app: Flask, service: str) -> None:
    @app.before_request
    def start() -> None:
        given = request.headers.get(REQUEST_ID, "")
        g.request_id = given if ACCEPTABLE_REQUEST_ID.match(given) else uuid.uuid4().hex
        g.started = time.perf_counter()
        clear_context()
        bind_context(service=service, request_id=g.request_id)
        if tracing.enabled():
            g.span = tracing.span(f"{request.method} {request.path}")
            g.span.__enter__()

    @app.after_request
    def finish(response: Response) -> Response:
        response.headers[REQUEST_ID] = g.get("request_id") or uuid.uuid4().hex
        route = request.url_rule.rule if request.url_rule else "<unmatched>"
        metrics.http_requests_total.labels(request.method, route, str(response.status_code)).inc()
        started = g.get("started")
        elapsed = time.perf_counter() - started if started is not None else 0.0
        metrics.http_request_duration_seconds.labels(request.method, route).observe(elapsed)
        if response.status_code >= 400:
            # Successes are counted in metrics; failures are worth a line each.
            (log.error if response.status_code >= 500 else log.info)(
                "request refused",
                method=request.method,
                path=request.path,
                status=response.status_code,
                duration_ms=round(elapsed * 1000, 2),
            )
        return response

    @app.teardown_request
    def close_span(_: BaseException | None) -> None:
        span = g.pop("span", None)
        if span is not None:
            span.__exit__(None, None, None)
