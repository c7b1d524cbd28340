"""Starting the servers and service processes a benchmark measures."""

from __future__ import annotations

import contextlib
import os
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from switchyard.config import Settings
from switchyard_devtools.stack.processes import free_port, spawn, stop_process
from switchyard_devtools.testing.infra import provide_infra, session_settings, settings_env


@contextlib.contextmanager
def bench_settings(workdir: Path, **overrides: object) -> Iterator[Settings]:
    """Settings on fresh embedded servers (or the URLs in the environment)."""
    workdir.mkdir(parents=True, exist_ok=True)
    with provide_infra(workdir) as urls:
        yield session_settings(urls, log_level="warning", **overrides)


def script(name: str) -> str:
    """A console script of this virtualenv."""
    return str(Path(sys.executable).with_name(name))


@contextlib.contextmanager
def service(
    argv: Sequence[str],
    settings: Settings,
    env: dict[str, str] | None = None,
    ready_url: str | None = None,
    log: Path | None = None,
) -> Iterator[int]:
    """Run a service process for the duration of the block; yields its pid."""
    environment = {**settings_env(settings), "LOG_LEVEL": "warning", **(env or {})}
    out = open(log, "ab") if log else open(os.devnull, "wb")  # noqa: SIM115
    process = spawn(argv, env=environment, stdout=out)
    try:
        if ready_url:
            wait_until_ok(ready_url, process_alive=lambda: process.poll() is None)
        yield process.pid
    finally:
        stop_process(process)
        out.close()


@contextlib.contextmanager
def api_server(
    settings: Settings,
    log_dir: Path,
    *,
    relay: bool = False,
    ready_path: str = "/readyz",
    log_name: str = "api",
    **env: str,
) -> Iterator[str]:
    """``switchyard-api serve`` (gunicorn, two workers unless ``API__WORKERS`` says
    otherwise) on a free port, with its outbox relay when ``relay``; yields its URL once
    ``ready_path`` answers 200."""
    port = free_port()
    environment = {
        "API__PORT": str(port),
        "API__WORKERS": "2",
        "ADMIN_PORT": str(free_port()),
        **env,
    }
    url = f"http://127.0.0.1:{port}"
    api = [script("switchyard-api")]
    with contextlib.ExitStack() as stack:
        if relay:
            stack.enter_context(
                service(
                    [*api, "relay"],
                    settings,
                    # Its own admin port: the API's gunicorn master serves one too.
                    {**environment, "ADMIN_PORT": str(free_port())},
                    log=log_dir / f"{log_name}-relay.log",
                )
            )
        stack.enter_context(
            service(
                [*api, "serve"],
                settings,
                environment,
                ready_url=url + ready_path,
                log=log_dir / f"{log_name}.log",
            )
        )
        yield url


def wait_until_ok(
    url: str, timeout: float = 60.0, process_alive: Callable[[], bool] = lambda: True
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive():
            raise RuntimeError(f"process behind {url} exited")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer 200 within {timeout:g}s")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its children (a gunicorn master and its workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [pid, *(int(p) for p in children.read_text().split())] if children.exists() else [pid]
