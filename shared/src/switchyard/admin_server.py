"""A tiny HTTP server for the operational endpoints: /healthz, /readyz and /metrics.

Guarantee: /healthz depends on nothing but this process (liveness never follows another
service); /readyz answers 503 only when its readiness source says the process cannot
serve; /metrics is this process's registry, or every process's in multiprocess mode.
Workers have no web framework: this runs beside their main loop in a daemon thread (and
in the API's gunicorn master, for the whole server, on ADMIN_PORT).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson

from switchyard import metrics
from switchyard.readiness import ReadinessSource


class AdminServer:
    """Serves the three operational endpoints of one process."""

    def __init__(self, readiness: ReadinessSource, host: str = "127.0.0.1", port: int = 0):
        self.readiness = readiness
        self.alive = True
        handler = _handler_for(self)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="admin-server", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> AdminServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler_for(server: AdminServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._send(200 if server.alive else 503, b'{"status":"ok"}', "application/json")
            elif path == "/readyz":
                report = server.readiness.report()
                self._send(
                    200 if report.ready else 503, orjson.dumps(report.as_dict()), "application/json"
                )
            elif path == "/metrics":
                body, content_type = metrics.render()
                self._send(200, body, content_type)
            else:
                self._send(404, b'{"title":"Not Found","status":404}', "application/problem+json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return None  # probes every few seconds would drown the real logs

    return Handler
