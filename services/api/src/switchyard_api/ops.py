"""Operational endpoints: /healthz, /readyz, /metrics, /openapi.json, each declared once."""

from __future__ import annotations

from typing import Any, Literal

from flask import Blueprint, current_app
from pydantic import BaseModel, ConfigDict

from switchyard import metrics
from switchyard_api.http.contract import Out, Reply, endpoint
from switchyard_api.http.problems import Problem
from switchyard_api.openapi import build_openapi

ops = Blueprint("ops", __name__)
TAGS = ("ops",)


class Alive(BaseModel):
    model_config = ConfigDict(title="Alive")

    status: Literal["ok"]


class Ready(BaseModel):
    """Ready to serve; ``degraded`` names each dependency down (its endpoints answer 503)."""

    model_config = ConfigDict(title="Ready")

    status: Literal["ready"]
    checks: dict[str, str]
    degraded: dict[str, str]


class NotReady(BaseModel):
    """A problem document that also names each dependency's state."""

    model_config = ConfigDict(title="NotReady")

    type: str
    title: str
    status: int
    detail: str
    checks: dict[str, str]
    degraded: dict[str, str]


# Serialised once: every probe and load balancer asks, and the answer never changes.
_ALIVE = Reply(Alive(status="ok").model_dump_json().encode(), raw=True)


@endpoint(
    ops, "GET", "/healthz", summary="Liveness", tags=TAGS, responses={200: Out("alive", Alive)}
)
def healthz() -> Reply:
    return _ALIVE


@endpoint(
    ops,
    "GET",
    "/readyz",
    summary="Readiness: each dependency's state by name; 503 only when shutting down",
    tags=TAGS,
    responses={
        200: Out("ready", Ready),
        503: Out(
            "shutting down, or a dependency every request needs does not answer",
            NotReady,
            headers={"Retry-After": {"schema": {"type": "string"}}},
            media_type="application/problem+json",
        ),
    },
)
def readyz() -> Reply:
    report = current_app.extensions["switchyard"].readiness.report()
    checks = {name: report.failures.get(name, "ok") for name in report.checked}
    if report.ready:
        return Reply(Ready(status="ready", checks=checks, degraded=report.degraded))
    reason = (
        "shutting down"
        if report.stopping
        else f"{', '.join(sorted(report.blocking))} did not answer"
    )
    return Reply(
        NotReady(
            type="/problems/not-ready",
            title="Service Unavailable",
            status=503,
            detail=f"not ready: {reason}",
            checks=checks,
            degraded=report.degraded,
        ),
        503,
        {"Retry-After": "1"},
    )


@endpoint(
    ops,
    "GET",
    "/metrics",
    summary="Prometheus metrics (404 when API__PUBLIC_METRICS=false: ADMIN_PORT only)",
    tags=TAGS,
    responses={200: Out("Prometheus text format", str, media_type="text/plain")},
)
def prometheus_metrics() -> Reply:
    if not current_app.extensions["switchyard"].settings.api.public_metrics:
        raise Problem(404, "Metrics are served on the admin port (ADMIN_PORT) only.")
    body, content_type = metrics.render()
    return Reply(body, headers={"Content-Type": content_type}, raw=True)


_document: dict[str, Any] | None = None


@endpoint(
    ops,
    "GET",
    "/openapi.json",
    summary="This document (OpenAPI 3.1)",
    tags=TAGS,
    responses={200: Out("OpenAPI 3.1", dict[str, Any])},
)
def openapi() -> Reply:
    global _document
    if _document is None:
        _document = build_openapi()
    return Reply(_document)
