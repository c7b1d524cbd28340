"""The Flask application factory: ``gunicorn 'switchyard_api.app:create_app()'``."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from flask import Flask

from switchyard import tracing
from switchyard.config import Settings, get_settings
from switchyard.logging import configure_logging
from switchyard_api.coupons.routes import coupons
from switchyard_api.coupons.schemas import CouponNameConverter
from switchyard_api.http import problems, request_context
from switchyard_api.ingest.routes import ingest
from switchyard_api.jobs.admin import jobs_admin
from switchyard_api.jobs.routes import jobs
from switchyard_api.jobs.schedules import schedules
from switchyard_api.ops import ops
from switchyard_api.products.routes import products
from switchyard_api.services import ApiServices
from switchyard_api.targets.routes import targets
from switchyard_api.users.routes import users

BLUEPRINTS = (ops, users, products, coupons, ingest, jobs, schedules, jobs_admin, targets)


class SwitchyardFlask(Flask):
    """Flask, minus a per-request cost: ``ensure_sync`` inspects each hook and view for
    being a coroutine on every request (a few percent of ``GET /healthz``); the answer
    never changes for a function, so it is kept."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._synced: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        synced = self._synced.get(func)
        if synced is None:
            synced = self._synced[func] = super().ensure_sync(func)
        return synced


def create_app(settings: Settings | None = None) -> Flask:
    if settings is None:
        os.environ.setdefault("SERVICE_NAME", "api")
        settings = get_settings()
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
    tracing.configure_tracing(settings.service_name, settings.otel_exporter_otlp_endpoint)

    app = SwitchyardFlask("switchyard_api")
    app.config["MAX_CONTENT_LENGTH"] = settings.api.max_body_bytes
    app.url_map.strict_slashes = False
    app.url_map.converters["coupon_name"] = CouponNameConverter
    app.extensions["switchyard"] = ApiServices(settings)

    request_context.install(app, settings.service_name)
    problems.register_error_handlers(app)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    return app


def services() -> ApiServices:
    """The current app's dependencies (inside a request)."""
    from flask import current_app

    return current_app.extensions["switchyard"]  # type: ignore[no-any-return]
