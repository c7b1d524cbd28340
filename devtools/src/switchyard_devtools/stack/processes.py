"""Starting child processes that die with their parent, whatever kills the parent."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

_PR_SET_PDEATHSIG = 1


def _die_with_parent(sig: int) -> None:
    # Linux only: the kernel sends `sig` to the child when its parent exits, even by
    # SIGKILL. Elsewhere children must be stopped explicitly.
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig)


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdout: int | IO[Any] | None = None,
    user: str | None = None,
    death_signal: int = signal.SIGTERM,
    new_session: bool = True,
) -> subprocess.Popen[bytes]:
    """Start ``argv``; it receives ``death_signal`` if this process dies first."""
    return subprocess.Popen(
        list(argv),
        env=dict(env) if env is not None else None,
        cwd=cwd,
        stdout=stdout,
        stderr=subprocess.STDOUT if stdout is not None else None,
        # Group too: keeping root's group would apply root-group permissions to the child.
        user=user,
        group=user,
        extra_groups=[] if user is not None else None,
        start_new_session=new_session,
        preexec_fn=lambda: _die_with_parent(death_signal),
    )


def free_port(preferred: int | None = None, host: str = "127.0.0.1") -> int:
    """``preferred`` when nothing listens there, else a port the kernel picks."""
    if preferred and port_is_free(preferred, host):
        return preferred
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def wait_for_port(
    port: int,
    process: subprocess.Popen[bytes] | None,
    what: str,
    timeout: float = 60.0,
    host: str = "127.0.0.1",
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode} while starting")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{what} did not listen on {host}:{port} within {timeout:g}s")


def stop_process(
    process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 20.0
) -> int:
    """Send ``sig``, wait up to ``timeout``, then SIGKILL; returns the exit status."""
    if process.poll() is None:
        try:
            os.kill(process.pid, sig)
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
        except ProcessLookupError:
            pass
    return process.wait()
