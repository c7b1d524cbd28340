"""What the dev stack runs on: servers given by URL or started here, token, config file."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

from switchyard.config import weak_admin_token
from switchyard_devtools.stack import infra
from switchyard_devtools.stack.infra import Server
from switchyard_devtools.stack.processes import port_is_free

# Away from the servers' usual ports, so a system PostgreSQL or Redis can keep running.
PREFERRED_PORTS = {"postgres": 15432, "redis": 16379, "kafka": 19092}
URL_ENV = {"postgres": "DATABASE_URL", "redis": "REDIS_URL", "kafka": "KAFKA_BOOTSTRAP_SERVERS"}
# Where `switchyard dev` keeps embedded servers' data, the admin token and, while it runs,
# the config file naming its servers (SWITCHYARD_CONFIG for commands in other terminals).
DEV_VAR_DIR = Path("var/dev")
CONFIG_NAME = "switchyard.toml"
DEV_CONFIG_FILE = DEV_VAR_DIR / CONFIG_NAME
TOKEN_NAME = "admin-token"  # noqa: S105  (a file name)

Say = Callable[[str], None]


@dataclass
class Backing:
    """The three servers the services need: their URLs, and those we started ourselves."""

    urls: dict[str, str] = field(default_factory=dict)
    embedded: list[Server] = field(default_factory=list)

    def source(self, name: str) -> str:
        return "embedded" if any(s.name == name for s in self.embedded) else URL_ENV[name]

    def stop(self, say: Say) -> None:
        # PostgreSQL first: it is the one holding data that must be checkpointed.
        for server in sorted(self.embedded, key=lambda s: list(URL_ENV).index(s.name)):
            if not server.alive():
                continue
            how = " (fast shutdown)" if server.name == "postgres" else ""
            say(f"stopping {server.name}{how}, pid {server.process.pid}")
            started = time.monotonic()
            status = server.stop(timeout=30.0)
            say(
                f"{server.name} stopped ({describe_status(status)}) "
                f"in {time.monotonic() - started:.1f}s"
            )


def provide_backing(var_dir: Path, say: Say) -> Backing:
    """URLs from the environment where set; every other server started under ``var_dir``."""
    backing = Backing()
    starters: dict[str, Callable[[int], Server]] = {
        "postgres": lambda port: infra.start_postgres(var_dir / "postgres" / "data", port),
        "redis": lambda port: infra.start_redis(var_dir / "redis", port),
        "kafka": lambda port: infra.start_kafka(var_dir / "kafka", port),
    }
    try:
        for name, env_name in URL_ENV.items():
            given = os.environ.get(env_name)
            if given:
                say(f"{name}: using {env_name}={redact(given)}")
                backing.urls[name] = given
                continue
            taken = (
                ""
                if port_is_free(PREFERRED_PORTS[name])
                else (f" ({PREFERRED_PORTS[name]} is taken: on a free port)")
            )
            say(f"{name}: starting embedded server{taken}")
            server = starters[name](PREFERRED_PORTS[name])
            backing.embedded.append(server)
            backing.urls[name] = server.url
    except BaseException:
        backing.stop(say)
        raise
    return backing


@dataclass(frozen=True)
class AdminToken:
    value: str
    # Where it came from, for the banner: the environment, or the file it is kept in.
    origin: str
    from_env: bool = False

    def display(self) -> str:
        # Printing a token the user chose adds nothing and puts it in terminal scrollback.
        return f"(from {self.origin})" if self.from_env else f"{self.value}  ({self.origin})"


def admin_token(var_dir: Path) -> AdminToken:
    """The token from the environment, else the one kept in ``var_dir`` across runs."""
    given = os.environ.get("ADMIN_TOKEN")
    if given:
        # Every service would refuse it at start; say so once, before starting anything.
        if problem := weak_admin_token(given):
            raise ValueError(f"ADMIN_TOKEN: {problem}")
        return AdminToken(given, "ADMIN_TOKEN", from_env=True)
    path = var_dir / TOKEN_NAME
    if path.is_file() and (kept := path.read_text().strip()):
        return AdminToken(kept, f"kept in {path}")
    token = secrets.token_urlsafe(32)
    _write_private(path, token + "\n")
    return AdminToken(token, f"generated, kept in {path}")


def write_config(path: Path, values: dict[str, object]) -> None:
    """Write a flat TOML file (strings, one optional table level) readable by any process."""
    lines: list[str] = []
    tables: list[str] = []
    for key, value in values.items():
        if isinstance(value, dict):
            tables.append(f"\n[{key}]")
            tables.extend(f"{k} = {_toml_value(v)}" for k, v in value.items())
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    header = "# Written by `switchyard dev` while it runs; removed when it stops.\n"
    _write_private(path, header + "\n".join(lines + tables) + "\n")


def _toml_value(value: object) -> str:
    # A JSON string is a valid TOML basic string; so are JSON integers and booleans.
    return json.dumps(value if isinstance(value, int | bool) else str(value))


def _write_private(path: Path, text: str) -> None:
    # The file holds the admin token: never readable by others, even for a moment.
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    temporary.replace(path)


class AlreadyRunning(RuntimeError):
    pass


@contextlib.contextmanager
def exclusive(var_dir: Path) -> Iterator[None]:
    """Hold a lock on ``var_dir`` so two dev stacks never share (and corrupt) its data."""
    var_dir.mkdir(parents=True, exist_ok=True)
    handle: IO[str] = open(var_dir / "supervisor.lock", "a+")  # noqa: SIM115
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "?"
            raise AlreadyRunning(
                f"another `switchyard dev` (pid {owner}) is running on {var_dir}"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()


def redact(url: str) -> str:
    """``url`` fit for a terminal: a password in it (``user:secret@``) becomes ``***``."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def describe_status(status: int | None) -> str:
    if status is None:
        return "running"
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"
