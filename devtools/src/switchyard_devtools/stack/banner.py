"""What ``switchyard dev`` prints once the stack is ready: where everything is, how to use it."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from switchyard_devtools.stack.output import Console
from switchyard_devtools.stack.services import (
    API,
    API_GRPC,
    GRPC_PORT,
    IMAGE_WORKER,
    REPORTED_SETTINGS,
    ServiceSpec,
)
from switchyard_devtools.stack.stack import AdminToken, Backing, redact

_NOTES = {
    "postgres": "embedded; data kept in {dir}/postgres",
    "redis": "embedded; append-only file kept in {dir}/redis",
    "kafka": "embedded tansu, IN MEMORY ONLY: topics and events are gone when it stops",
}


@dataclass
class Banner:
    console: Console
    specs: Sequence[ServiceSpec]
    backing: Backing
    token: AdminToken
    config_path: Path
    started: float

    def show(self) -> None:
        elapsed = time.monotonic() - self.started
        rule = "=" * 78  # ASCII: stdout may not be UTF-8
        lines = [rule, f"  Switchyard dev stack ready in {elapsed:.1f}s", ""]
        api = next((spec for spec in self.specs if spec.name == API), None)
        if api is not None:
            base = f"http://127.0.0.1:{api.port}"
            lines += [
                f"  API             {base}{self._moved(api)}",
                f"  readiness       {base}/readyz",
                f"  OpenAPI         {base}/openapi.json",
            ]
        lines += self._grpc()
        for spec in self.specs:
            if spec.name != API:
                lines.append(
                    f"  {spec.name:<15} admin port {spec.port}{self._moved(spec)} "
                    "(/healthz /readyz /metrics)"
                )
        if not self.specs:
            lines.append(
                "  no services (--no-services): start them by hand from this "
                "directory, e.g. `uv run switchyard-batcher`"
            )
        lines += self._media()
        lines.append("")
        var_dir = self.config_path.parent
        for name, url in self.backing.urls.items():
            source = self.backing.source(name)
            note = _NOTES[name].format(dir=var_dir) if source == "embedded" else f"from {source}"
            lines.append(f"  {name:<15} {redact(url)}  ({note})")
        lines += [
            f"  admin token     {self.token.display()}",
            f"  config          {self.config_path} (removed on exit)",
            "",
            "  Try:",
        ]
        # Processes read a config file only when SWITCHYARD_CONFIG names it.
        prefix = f"SWITCHYARD_CONFIG={self.config_path.resolve()} "
        if api is not None:
            lines.append(f"    curl http://127.0.0.1:{api.port}/readyz")
        uv = uv_command()
        lines += [
            f"    {prefix}{uv} run switchyard users list",
            f"    {prefix}{uv} run switchyard topics tail users --follow",
            "",
            "  Ctrl-C or SIGTERM stops everything in order; a second Ctrl-C kills the services.",
            rule,
        ]
        self.console.raw("\n".join(lines))

    def _grpc(self) -> list[str]:
        spec = next((spec for spec in self.specs if spec.name == API_GRPC), None)
        if spec is None:
            return []
        port = spec.argv[spec.argv.index("--port") + 1]
        moved = f" ({GRPC_PORT} was taken)" if port != str(GRPC_PORT) else ""
        return [
            f"  gRPC            127.0.0.1:{port}{moved}  (switchyard.jobs.v1.Jobs; "
            f"`grpcurl -plaintext 127.0.0.1:{port} list`)"
        ]

    def _media(self) -> list[str]:
        """Where product images go, and which private addresses they may come from."""
        worker = next((spec for spec in self.specs if spec.name == IMAGE_WORKER), None)
        if worker is None:
            return []
        lines = [
            f"  media           {worker.env.get('MEDIA_ROOT', 'var/media')}  "
            "(MEDIA_ROOT: compressed product images, kept between runs)"
        ]
        for name in REPORTED_SETTINGS:
            value = worker.env.get(name, "")
            lines.append(
                f"  {name:<15} {value}  (image URLs may point at these)"
                if value
                else f"  {name:<15} none: public addresses only "
                f"(`{name}=127.0.0.1/32 make dev` for a local image server)"
            )
        return lines

    @staticmethod
    def _moved(spec: ServiceSpec) -> str:
        return f" ({spec.preferred} was taken)" if spec.port != spec.preferred else ""


def uv_command() -> str:
    """How to call uv from this directory: ``uv`` when it is on PATH, else the one that
    started this process (``make bootstrap`` installs it into var/tools when missing)."""
    if shutil.which("uv"):
        return "uv"
    started_by = os.environ.get("UV")
    if not started_by:
        return "var/tools/bin/uv"
    relative = os.path.relpath(started_by)
    return started_by if relative.startswith("..") else relative
