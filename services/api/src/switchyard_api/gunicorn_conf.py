"""gunicorn settings for the API: ``gunicorn -c python:switchyard_api.gunicorn_conf``.

gthread workers: a request that waits for Kafka's acknowledgement holds a thread, not a
process, so one worker per core with many threads keeps both cores busy.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from gunicorn import glogging

from switchyard.config import get_settings
from switchyard.logging import configure_logging

os.environ.setdefault("SERVICE_NAME", "api")
_settings = get_settings()

# Before any worker imports prometheus_client: each worker writes its samples here and
# /metrics adds them up, so counters are right whichever worker answers the scrape.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="switchyard-metrics-")

bind = f"{_settings.api.host}:{_settings.api.port}"
workers = _settings.api.workers
worker_class = "gthread"
threads = _settings.api.threads
backlog = 2048
timeout = 60
graceful_timeout = 30
keepalive = 5
# gunicorn's maximum (default 4094): a longer request line gets gunicorn's own HTML 414,
# outside the document and without X-Request-ID; the contract test's generated query
# strings reach 4 KB.
limit_request_line = 8190
accesslog = None  # every request is counted in http_requests_total; lines would be noise


class _WithoutAccessLines(glogging.Logger):  # type: ignore[misc]
    """gunicorn's logger, minus access lines. With ``logconfig_dict`` set, gunicorn
    builds every request's access-line fields (dates, header scans) before the level
    drops the line: a tenth of a health check's CPU in the profile."""

    def access(self, *_: Any) -> None:
        return None


logger_class = _WithoutAccessLines
# gunicorn's own loggers propagate to the root logger, which structlog renders as JSON.
logconfig_dict: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {
        "gunicorn.error": {"level": _settings.log_level.upper(), "propagate": True},
        "gunicorn.access": {"level": "WARNING", "propagate": True},
    },
}


def on_starting(_: Any) -> None:
    configure_logging(_settings.service_name, _settings.log_level, _settings.log_format)
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    # Samples of an earlier run would be added to this one's.
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, exist_ok=True)


_admin: list[Any] = []


def when_ready(_: Any) -> None:
    """/healthz, /readyz and /metrics (every worker's) on ADMIN_PORT, as the workers
    serve them: in the master, so a scrape never depends on which worker answers."""
    import sys

    from switchyard.admin_server import AdminServer
    from switchyard.logging import get_logger
    from switchyard.readiness import ForwardedReadiness

    host = _settings.api.host
    local = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    local = f"[{local}]" if ":" in local else local
    readiness = ForwardedReadiness(f"http://{local}:{_settings.api.port}/readyz")
    try:
        admin = AdminServer(readiness, "0.0.0.0", _settings.admin_port).start()
    except OSError as exc:
        print(f"switchyard-api: ADMIN_PORT={_settings.admin_port}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    _admin.append(admin)
    get_logger("switchyard_api").info("admin server started", admin_port=admin.port)


def on_exit(_: Any) -> None:
    for admin in _admin:
        admin.stop()


def post_worker_init(_: Any) -> None:
    import gc
    import threading

    from switchyard.kafka.topics import ensure_topics_patiently

    # What the worker imported and built lives as long as it does: out of the collector's
    # way, a collection scans only what requests allocate (the full collections over the
    # modules' objects were about a third of a 100-event POST /logs' CPU).
    gc.freeze()

    # In the background: a Kafka that is still starting must not keep the API from
    # answering (its /readyz says what is missing meanwhile).
    threading.Thread(
        target=ensure_topics_patiently,
        args=(_settings, lambda: False),
        name="ensure-topics",
        daemon=True,
    ).start()


def child_exit(_: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def worker_exit(_: Any, worker: Any) -> None:
    app = getattr(worker, "wsgi", None)
    services = getattr(app, "extensions", {}).get("switchyard") if app else None
    if services is not None:
        services.close()  # delivers what the producer still holds before the worker exits
