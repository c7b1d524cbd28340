"""The services of the dev stack: how each is started, on which port, in which order."""

from __future__ import annotations

import sys
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from switchyard.kafka.topics import JOB_RETRY_TIERS
from switchyard_devtools.stack.processes import free_port, port_is_free

API = "api"
RELAY = "outbox-relay"
# The jobs API over gRPC (`switchyard-api grpc`); its gRPC port comes after `--port`.
API_GRPC = "api-grpc"
GRPC_PORT = 50051
API_ADMIN_PORT = 9100
IMAGE_WORKER = "image-worker"
JOB_WORKER = "job-worker"
# The job-worker's groups (services/job-worker/DESIGN.md): `jobs`, and a runner and group
# per retry tier (`jobs.retry-5s` by `job-worker-retry-5s`, ...). A tier holds its
# records until their due time, so a stop may wait for them up to the drain timeout;
# what is still held then is reported as lost with the broker (the jobs stay `retrying`
# in PostgreSQL, and the leader announces them again later).
JOB_WORKER_CONSUMES = (
    ("job-worker", "jobs"),
    *((f"job-worker-{name.rsplit('.', 1)[-1]}", name) for name, _ in JOB_RETRY_TIERS),
)
# Where compressed product images go, under the dev stack's var dir (kept between runs):
# the image-worker writes there, the API reads the same files.
MEDIA_DIR = "media"
# Settings the services take from the environment `switchyard dev` runs in (everything
# is passed through); named here because the banner reports them, e.g.
# `FETCH__ALLOW=127.0.0.1/32 make dev` lets the image-worker fetch from a local server.
REPORTED_SETTINGS = ("FETCH__ALLOW",)


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    # The port answering /readyz: the admin port of a worker, the API port of the API.
    port: int
    # A tier starts once every service of the tiers below answers ready.
    tier: int = 0
    # Stopped in ascending rank; services of equal rank are stopped in parallel.
    stop_rank: int = 2
    # The port it would have had if free; differs from ``port`` when that one was taken.
    preferred: int = 0
    # (consumer group, topic) pairs it consumes, topic prefix applied: the supervisor lets
    # them catch up before stopping the in-memory broker.
    consumes: tuple[tuple[str, str], ...] = ()

    @property
    def ready_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/readyz"


@dataclass(frozen=True)
class _Entry:
    name: str
    script: str
    args: tuple[str, ...]
    port: int
    tier: int
    stop_rank: int
    # (group, topic) without the topic prefix, which prefixes both.
    consumes: tuple[tuple[str, str], ...] = ()


# The API comes last and goes first: its /readyz answering 200 then means the whole
# stack is up, and it drains its requests while the workers can still consume.
CATALOGUE = (
    _Entry(
        "batcher",
        "switchyard-batcher",
        (),
        9102,
        0,
        2,
        (("batcher-logs", "logs"), ("batcher-health", "health")),
    ),
    _Entry(
        IMAGE_WORKER, "switchyard-image-worker", (), 9103, 0, 2, (("image-worker", "products"),)
    ),
    _Entry(JOB_WORKER, "switchyard-job-worker", (), 9104, 0, 2, JOB_WORKER_CONSUMES),
    # A producer that never idles (target.checked on `health`, target.down/up through the
    # outbox): stopped first with the API, so the relay still publishes its last changes
    # and the drain before the workers stop is not chasing a stream that keeps coming.
    _Entry("health-checker", "switchyard-health-checker", (), 9105, 0, 0),
    _Entry(RELAY, "switchyard-api", ("relay",), 9101, 0, 1),
    # Ready before the API starts (so the API's /readyz still means "all up"); stops with it.
    _Entry(API_GRPC, "switchyard-api", ("grpc",), 9106, 0, 0),
    _Entry(API, "switchyard-api", ("serve",), 8080, 1, 0),
)
NAMES = tuple(entry.name for entry in CATALOGUE)


class PortTaken(RuntimeError):
    pass


def dev_defaults(var_dir: Path) -> dict[str, str]:
    """Settings the dev stack gives every service unless its own environment sets them."""
    return {"MEDIA_ROOT": str(var_dir / MEDIA_DIR)}


def build_specs(
    selected: Collection[str],
    base_env: Mapping[str, str],
    api_port: int | None = None,
    topic_prefix: str = "",
) -> list[ServiceSpec]:
    """The selected services with their commands, environments and free ports."""
    taken: set[int] = set()
    specs = []
    for entry in CATALOGUE:
        if entry.name not in selected:
            continue
        env = {**base_env, "SERVICE_NAME": entry.name}
        preferred = entry.port
        if entry.name == API:
            preferred = api_port or entry.port
            port = _api_port(api_port, taken)
            # Its gunicorn master's /healthz /readyz /metrics (all workers), as in prod.
            admin_port = _pick(API_ADMIN_PORT, taken | {port}, "0.0.0.0")
            taken.add(admin_port)
            env.update(
                {"API__HOST": "127.0.0.1", "API__PORT": str(port), "ADMIN_PORT": str(admin_port)}
            )
        else:
            # Workers' admin servers listen on every interface: check that, not loopback.
            port = _pick(entry.port, taken, "0.0.0.0")
            env["ADMIN_PORT"] = str(port)
        taken.add(port)
        args = entry.args
        if entry.name == API_GRPC:
            grpc_port = _pick(GRPC_PORT, taken, "127.0.0.1")
            taken.add(grpc_port)
            args = (*args, "--port", str(grpc_port))
        consumes = tuple(
            (topic_prefix + group, topic_prefix + topic) for group, topic in entry.consumes
        )
        specs.append(
            ServiceSpec(
                entry.name,
                (_script(entry.script), *args),
                env,
                port,
                entry.tier,
                entry.stop_rank,
                preferred,
                consumes,
            )
        )
    return specs


def _api_port(requested: int | None, taken: set[int]) -> int:
    if requested is None:
        return _pick(next(e.port for e in CATALOGUE if e.name == API), taken, "127.0.0.1")
    if requested in taken or not port_is_free(requested):
        raise PortTaken(f"--api-port {requested}: the port is in use")
    return requested


def _pick(preferred: int, taken: set[int], host: str) -> int:
    port = free_port(preferred, host)
    while port in taken:
        # The kernel may hand out a port we already promised to another service.
        port = free_port(None, host)
    return port


def _script(name: str) -> str:
    # Next to the interpreter running us, so services run in the very same environment.
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; run `uv sync --all-packages`")
    return str(path)
