"""``switchyard dev`` as a user runs it: a real supervisor, real servers, real workers.

Each test starts the supervisor in a fresh working directory (so ``var/dev`` is its own),
with embedded servers and the four worker services, and checks what is left afterwards
by walking /proc: every process the supervisor had under it must be gone.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from switchyard.config import load_settings
from switchyard.db.engine import create_engine
from switchyard_devtools.stack.processes import spawn
from switchyard_devtools.testing.infra import InfraUrls

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc and PDEATHSIG"),
]

SWITCHYARD = str(Path(sys.executable).parent / "switchyard")
WORKERS = ("batcher", "image-worker", "job-worker", "health-checker")
READY = re.compile(r"Switchyard dev stack ready in")
Proc = tuple[int, str]  # pid and start time: a pid alone may be reused


class DevStack:
    def __init__(self, workdir: Path, *options: str, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.log = workdir / "dev.out"
        environment = dict(os.environ)
        for name in (
            "DATABASE_URL",
            "REDIS_URL",
            "KAFKA_BOOTSTRAP_SERVERS",
            "ADMIN_TOKEN",
            "SWITCHYARD_CONFIG",
            "SWITCHYARD_VAR_DIR",
        ):
            environment.pop(name, None)
        environment.update(env or {})
        self.env = environment
        env = environment
        with open(self.log, "wb") as out:
            # spawn: if pytest itself is killed, the supervisor (and so its tree) goes too.
            self.process = spawn(
                [SWITCHYARD, "dev", *(options or ["--no-api"])], env=env, cwd=workdir, stdout=out
            )
        self.seen: set[Proc] = set()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(
        self, pattern: str | re.Pattern[str], timeout: float = 120.0, after: int = 0
    ) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.compile(pattern).search(self.output(), after)
            if match:
                return match
            if self.process.poll() is not None:
                pytest.fail(
                    f"supervisor exited ({self.process.returncode}) before "
                    f"{pattern!r}:\n{self.output()}"
                )
            time.sleep(0.1)
        pytest.fail(f"no {pattern!r} within {timeout:g}s:\n{self.output()}")

    def latest_start(self, service: str) -> tuple[int, int]:
        starts = re.findall(rf"started {service} \(pid (\d+), port (\d+)\)", self.output())
        assert starts, self.output()
        return int(starts[-1][0]), int(starts[-1][1])

    def remember_tree(self) -> set[Proc]:
        tree = descendants(self.process.pid)
        self.seen |= tree
        return tree

    def stop(self, sig: int) -> float:
        started = time.monotonic()
        self.process.send_signal(sig)
        self.process.wait(timeout=90)
        return time.monotonic() - started


@pytest.fixture
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DevStack]:
    options = getattr(request, "param", ())
    dev = DevStack(tmp_path, *options)
    yield dev
    if dev.process.poll() is None:
        dev.process.kill()
        dev.process.wait()


# Two workers are enough where the point is the processes, not the services: less load.
two_workers = pytest.mark.parametrize(
    "stack", [("--only", "batcher", "--only", "job-worker")], indirect=True
)


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its end.
    return [
        str(pid),
        raw[raw.index("(") + 1 : raw.rindex(")")],
        *raw[raw.rindex(")") + 2 :].split(),
    ]


def descendants(root: int) -> set[Proc]:
    children: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))):
            children.setdefault(int(fields[3]), []).append(int(entry.name))
            starts[int(entry.name)] = fields[21]
    found: set[Proc] = set()
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.add((pid, starts[pid]))
        todo.extend(children.get(pid, []))
    return found


def still_running(procs: set[Proc]) -> list[str]:
    alive = []
    for pid, start in procs:
        fields = _stat(pid)
        if fields and fields[21] == start and fields[2] != "Z":
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes()[:120]
            except OSError:  # it exited between the two reads: gone, as wanted
                continue
            alive.append(f"{pid} {command!r}")
    return alive


def wait_until_gone(procs: set[Proc], timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while (alive := still_running(procs)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return alive


def command_names(procs: set[Proc]) -> str:
    return " ".join(
        sorted(
            Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").replace("\0", " ")
            for pid, _ in procs
            if _stat(pid)
        )
    )


def healthz(port: int) -> int | None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def test_restarts_a_killed_worker_and_stops_everything_on_sigterm(stack: DevStack) -> None:
    stack.wait_for(READY)
    config = stack.workdir / "var" / "dev" / "switchyard.toml"
    assert 'database_url = "postgresql://' in config.read_text()
    tree = stack.remember_tree()
    names = command_names(tree)
    for expected in ("postgres", "redis-server", "tansu", *(f"switchyard-{w}" for w in WORKERS)):
        assert expected in names

    # Another terminal: the CLI reads the stack's file only when told to, as the banner says.
    assert re.search(
        rf"SWITCHYARD_CONFIG={re.escape(str(config.resolve()))} \S*uv run switchyard users list",
        stack.output(),
    )
    cli = subprocess.run(
        [SWITCHYARD, "users", "list"],
        cwd=stack.workdir,
        env={**stack.env, "SWITCHYARD_CONFIG": str(config)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    assert "users)" in cli.stderr

    old_pid, port = stack.latest_start("batcher")
    mark = len(stack.output())
    os.kill(old_pid, signal.SIGKILL)
    stack.wait_for(rf"batcher \(pid {old_pid}\) exited \(killed by SIGKILL\)", 30, mark)
    stack.wait_for(r"started batcher \(pid \d+", 30, mark)
    new_pid, new_port = stack.latest_start("batcher")
    assert new_pid != old_pid
    assert new_port == port
    deadline = time.monotonic() + 30
    while healthz(port) != 200:
        assert time.monotonic() < deadline, stack.output()
        time.sleep(0.2)
    assert any(pid == new_pid for pid, _ in stack.remember_tree())

    took = stack.stop(signal.SIGTERM)
    assert stack.process.returncode == 0, stack.output()
    assert took < 45, f"stopping took {took:.1f}s"
    assert still_running(stack.seen) == []
    output = stack.output()
    assert output.index("batcher stopped") < output.index("stopping postgres")
    assert not config.exists()
    # Data survives the stop: the next run starts from it.
    assert (stack.workdir / "var" / "dev" / "postgres" / "data" / "PG_VERSION").exists()
    assert (stack.workdir / "var" / "dev" / "admin-token").exists()


@two_workers
def test_children_die_when_the_supervisor_is_killed(stack: DevStack) -> None:
    stack.wait_for(READY)
    names = command_names(stack.remember_tree())
    for expected in (
        "postgres",
        "redis-server",
        "tansu",
        "switchyard-batcher",
        "switchyard-job-worker",
    ):
        assert expected in names

    stack.stop(signal.SIGKILL)

    assert wait_until_gone(stack.seen, timeout=30) == []


@two_workers
def test_infrastructure_dying_is_fatal(stack: DevStack) -> None:
    stack.wait_for(READY)
    stack.remember_tree()
    redis_pid = next(
        pid for pid, _ in stack.seen if b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    )

    os.kill(redis_pid, signal.SIGKILL)

    stack.process.wait(timeout=60)
    assert stack.process.returncode == 1
    assert f"redis (pid {redis_pid}) exited unexpectedly (killed by SIGKILL)" in stack.output()
    assert still_running(stack.seen) == []


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _post_logs(port: int, service: str, start: int, count: int) -> int:
    """One POST /logs of ``count`` events; the number accepted (202), else 0."""
    body = orjson.dumps(
        [
            {"service": service, "message": f"event {start + n}", "attributes": {"n": start + n}}
            for n in range(count)
        ]
    )
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/logs", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        return count if response.status == 202 else 0
    except OSError:
        return 0
    finally:
        connection.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_group_signal_stops_in_order_and_loses_no_accepted_event(
    sig: signal.Signals, infra: InfraUrls, tmp_path: Path
) -> None:
    """The way systemd, `timeout` or a CI runner stop `make dev`: a signal to its whole
    process group, which the supervisor sees twice (directly, and forwarded by `uv run`).
    No service is killed, and every event the API accepted is in PostgreSQL afterwards,
    although the batcher lagged behind the API when the signal came."""
    base = infra.database_url.rsplit("/", 1)[0]
    # PostgreSQL outside the stack: the rows are counted after the stack is gone. Kafka is
    # the embedded in-memory broker, which loses whatever is not consumed when it stops.
    database_url = f"{base}/devstop_{uuid.uuid4().hex[:8]}"
    stack = DevStack(
        tmp_path,
        "--only",
        "api",
        "--only",
        "batcher",
        env={
            "DATABASE_URL": database_url,
            "REDIS_URL": infra.redis_url,
            # Small batches, one consumer thread, a short prefetch: the batcher lags.
            "BATCHER__LOGS__WORKERS": "1",
            "BATCHER__LOGS__MAX_SIZE": "20",
            "BATCHER__SINKS": '["postgres"]',
            # One producer: tansu can let a fetch skip a batch that two producers wrote
            # to one partition at once (README, "Batcher"), which would count here as
            # lost; Apache Kafka does not.
            "API__WORKERS": "1",
        },
    )
    try:
        stack.wait_for(READY)
        _, port = stack.latest_start("api")
        service = f"devstop-{uuid.uuid4().hex[:8]}"
        batch, requests = 100, 40
        with ThreadPoolExecutor(4) as pool:
            accepted = sum(
                pool.map(lambda i: _post_logs(port, service, i * batch, batch), range(requests))
            )
        assert accepted >= batch * requests // 2, stack.output()
        tree = stack.remember_tree()
        group = os.getpgid(stack.process.pid)
        assert group not in {_pgid(pid) for pid, _ in tree}, "a child is in our group"

        stopping = time.monotonic()
        os.killpg(group, sig)
        os.kill(stack.process.pid, sig)  # the copy `uv run` forwards, milliseconds later
        stack.process.wait(timeout=100)
        took = time.monotonic() - stopping
    finally:
        if stack.process.poll() is None:
            stack.process.kill()
            stack.process.wait()
    engine = create_engine(load_settings(database_url=database_url), pool_size=1)
    try:
        with engine.connect() as connection:
            stored = connection.execute(
                sa.text("SELECT count(*) FROM logs WHERE service = :s"), {"s": service}
            ).scalar_one()
    finally:
        engine.dispose()
    output = stack.output()
    drained = re.search(r"consumers caught up in ([\d.]+)s", output)
    print(
        f"{sig.name}: {accepted} accepted, {stored} stored, stop took {took:.1f}s, "
        f"drain {drained.group(1) if drained else '?'}s"
    )
    assert stack.process.returncode == 0, output
    assert "SIGKILL" not in output and "second signal" not in output, output
    assert re.search(r"batcher stopped \(exit status 0\)", output), output
    assert output.index("api stopped") < output.index("letting consumers drain")
    assert output.index("consumers caught up") < output.index("stopping batcher")
    assert output.index("batcher stopped") < output.index("stopping kafka")
    assert still_running(stack.seen) == []

    assert stored == accepted, output
