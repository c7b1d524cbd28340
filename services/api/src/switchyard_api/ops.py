"""Operational endpoints: /healthz, /readyz, /metrics, /openapi.json."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from switchyard import metrics
from switchyard_api.http.responses import json_response
from switchyard_api.openapi import build_openapi

ops = Blueprint("ops", __name__)


@ops.get("/healthz")
def healthz() -> Response:
    return json_response({"status": "ok"})


@ops.get("/readyz")
def readyz() -> Response:
    report = current_app.extensions["switchyard"].readiness.report()
    if report.ready:
        return json_response(report.as_dict())
    failing = ", ".join(sorted(report.failures))
    body = {
        "type": "/problems/not-ready", "title": "Service Unavailable", "status": 503,
        "detail": f"not ready: {failing} did not answer", **report.as_dict(),
    }
    response = json_response(body, 503, {"Retry-After": "1"})
    response.mimetype = "application/problem+json"
    return response


@ops.get("/metrics")
def prometheus_metrics() -> Response:
    body, content_type = metrics.render()
    return Response(body, content_type=content_type)


_document: dict[str, object] | None = None


@ops.get("/openapi.json")
def openapi() -> Response:
    global _document
    if _document is None:
        _document = build_openapi()
    return json_response(_document)
