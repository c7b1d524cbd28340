"""``switchyard dev`` starts the gRPC jobs API on its own port and says where: no servers."""

from __future__ import annotations

import io
import socket
import time
from pathlib import Path

from switchyard_devtools.stack.banner import Banner
from switchyard_devtools.stack.output import Console
from switchyard_devtools.stack.services import API_GRPC, GRPC_PORT, NAMES, build_specs
from switchyard_devtools.stack.stack import AdminToken, Backing


def _grpc_port(argv: tuple[str, ...]) -> int:
    return int(argv[argv.index("--port") + 1])


def test_grpc_process_gets_its_own_ports_and_is_up_before_the_api() -> None:
    specs = {spec.name: spec for spec in build_specs(NAMES, {}, topic_prefix="")}
    spec = specs[API_GRPC]
    assert spec.argv[1:3] == ("grpc", "--port")
    assert spec.argv[0].endswith("switchyard-api")
    assert spec.tier < specs["api"].tier, "the API's /readyz means the whole stack is up"
    assert spec.stop_rank == specs["api"].stop_rank, "it takes requests: stops first"
    ports = [s.port for s in specs.values()] + [_grpc_port(spec.argv)]
    assert len(ports) == len(set(ports)), "every port differs"
    assert spec.env["ADMIN_PORT"] == str(spec.port)


def test_a_taken_grpc_port_moves_and_the_banner_says_so() -> None:
    with socket.socket() as holder:
        try:
            holder.bind(("127.0.0.1", GRPC_PORT))
            holder.listen()
        except OSError:
            pass  # something else holds it already: the same situation
        specs = build_specs([API_GRPC], {})
    port = _grpc_port(specs[0].argv)
    assert port != GRPC_PORT
    out = io.StringIO()
    Banner(
        Console([API_GRPC], out, colour=False),
        specs,
        Backing(),
        AdminToken("t", "test"),
        Path("var/dev/switchyard.toml"),
        time.monotonic(),
    ).show()
    assert f"gRPC            127.0.0.1:{port} ({GRPC_PORT} was taken)" in out.getvalue()
