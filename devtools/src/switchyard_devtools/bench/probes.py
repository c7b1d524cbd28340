"""Probes: the health-checker's engine against N local targets, beside the least code.

Guarantee: every figure comes from one run, on the same targets, one client process at
a time (so each has the machine to itself), each against a server process of its own
(so no client meets the sockets another left in TIME_WAIT):

- targets: ``/t/{id}`` on a raw asyncio HTTP server on loopback (not aiohttp's, to keep
  the server's CPU small and out of the client's); 80 % fast (answer at once), 10 % slow
  (answer after 1 s), 5 % refusing (a closed port), 5 % TCP (connect, close). Each has
  the interval and a 5 s timeout.
- clients, each in a fresh process: ``engine`` (Prober + Scheduler, keep-alive on),
  ``engine-no-keepalive`` (a new connection per probe), and ``least-code``: one asyncio
  task per target looping ``sleep; session.get; read`` with one aiohttp session (no
  connection limit, a random start offset so it is not a stampede), the least code
  doing the same probes.
- a client runs one warm-up interval (the first firings spread over it), then
  ``intervals`` measured ones, then the same tail (a timeout) for both, so a probe due
  in the window but started late still counts. Probes/s and the process's CPU seconds
  per probe (``getrusage``: user + system) are over the probes started in the window;
  "every target probed once per interval" and the lag (start - due) percentiles are
  over the probes *due* in the window; the least gap between two starts of one target
  (whole run) says whether any target was ever probed twice too close together.

Run: ``python -m switchyard_devtools.bench.probes [--targets 2000,10000] [--interval 10]
[--intervals 3]``, or ``switchyard bench probes`` once listed in ``BENCHMARKS``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import resource
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

NAME = "probes"
CLIENTS = ("engine", "least-code", "engine-no-keepalive")
SLOW_SECONDS = 1.0
TIMEOUT_SECONDS = 5.0
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


def _more_files() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- the targets' server ----------------------------------------------------------------
class _Responder(asyncio.Protocol):
    """HTTP/1.1 with keep-alive: one canned answer per request head, now or later."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head, self.buffer = self.buffer[:end].lower(), self.buffer[end + 4 :]
            close = b"connection: close" in head
            if self.delay:
                asyncio.get_running_loop().call_later(self.delay, self._answer, close)
            else:
                self._answer(close)

    def _answer(self, close: bool) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(OK)
            if close:
                self.transport.close()


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    fast = await loop.create_server(lambda: _Responder(0), "127.0.0.1", 0, backlog=4096)
    slow = await loop.create_server(lambda: _Responder(SLOW_SECONDS), "127.0.0.1", 0, backlog=4096)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        refusing = closed.getsockname()[1]
    ports = {
        "fast": fast.sockets[0].getsockname()[1],
        "slow": slow.sockets[0].getsockname()[1],
        "refusing": refusing,
    }
    print(json.dumps(ports), flush=True)
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin
    print(json.dumps({"cpu_seconds": _cpu()}), flush=True)


def _urls(count: int, ports: dict[str, int]) -> list[str]:
    urls = []
    for i in range(count):
        slot = i % 20
        if slot < 16:
            urls.append(f"http://127.0.0.1:{ports['fast']}/t/{i}")
        elif slot < 18:
            urls.append(f"http://127.0.0.1:{ports['slow']}/t/{i}")
        elif slot < 19:
            urls.append(f"http://127.0.0.1:{ports['refusing']}/t/{i}")
        else:
            urls.append(f"tcp://127.0.0.1:{ports['fast']}")
    return urls


# -- the clients ------------------------------------------------------------------------
def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _system_cpu() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


class _Window:
    """What happened between the end of the warm-up interval and the end of the run.

    A probe belongs to the interval it was *due* in, not the one it happened to start
    in: on a loaded machine a probe due just before the window starts late inside it,
    and counting by start time would show its target probed four times in three
    intervals when it was probed once per slot. Whether two probes of one target really
    came too close is answered by the gaps between their starts, over the whole run.
    """

    def __init__(self, start: float, interval: float, intervals: int) -> None:
        self.start, self.end = start + interval, start + interval * (1 + intervals)
        self.interval = interval
        self.per_target: Counter[int] = Counter()  # probes due in the window
        self.outcomes: Counter[str] = Counter()
        self.lags: list[float] = []  # of the probes due in the window
        self.started_in_window = 0  # the work the window's CPU time paid for
        self.last_start: dict[int, float] = {}
        self.min_gap = math.inf  # between two starts of one target
        self.close_pairs = 0  # two starts of one target less than half an interval apart

    def started(self, target_id: int, lag: float) -> bool:
        """Count a probe starting now, ``lag`` after its due time; whether it is counted."""
        now = asyncio.get_running_loop().time()
        last = self.last_start.get(target_id)
        self.last_start[target_id] = now
        if last is not None:
            self.min_gap = min(self.min_gap, now - last)
            self.close_pairs += now - last < self.interval / 2
        if self.start <= now < self.end:
            self.started_in_window += 1
        if not self.start <= now - lag < self.end:
            return False
        self.per_target[target_id] += 1
        self.lags.append(lag)
        return True

    async def measure(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(self.start - loop.time())
        load = os.getloadavg()[0]  # what else the machine runs (it is shared)
        cpu0, system0, wall0 = _cpu(), _system_cpu(), time.monotonic()
        await asyncio.sleep(self.end - loop.time())
        return {
            "cpu_seconds": _cpu() - cpu0,
            "system_cpu_seconds": _system_cpu() - system0,
            "wall_seconds": time.monotonic() - wall0,
            "load_before": load,
            "load_after": os.getloadavg()[0],
        }


async def _engine(
    urls: list[str], interval: float, intervals: int, keep_alive: bool
) -> tuple[dict[str, Any], _Window]:
    from switchyard_health_checker.probes import Prober, ProbeSettings
    from switchyard_health_checker.scheduler import Limits, Scheduler
    from switchyard_health_checker.targets import ProbeResult, Target

    loop = asyncio.get_running_loop()
    window = _Window(loop.time(), interval, intervals)
    pending_lag: dict[int, float] = {}
    async with Prober(ProbeSettings(keep_alive=keep_alive)) as prober:

        async def probe(target: Target) -> ProbeResult:
            counted = window.started(target.id, pending_lag.pop(target.id, 0.0))
            result = await prober.probe(target)
            if counted:
                window.outcomes[result.error.reason if result.error else "up"] += 1
            return result

        async def sink(target: Target, result: ProbeResult) -> None:
            return None

        def lag_observer(target: Target, lag: float) -> None:
            pending_lag[target.id] = lag  # probe() runs next, in the same task

        timeout = min(TIMEOUT_SECONDS, interval)
        # Everything is on one loopback host, so its cap is the global one.
        limits = Limits(max_in_flight=2_000, max_per_host=2_000)
        targets = [
            Target(i, f"t{i}", url, interval_seconds=interval, timeout_seconds=timeout)
            for i, url in enumerate(urls)
        ]
        async with Scheduler(probe, sink, limits, lag_observer=lag_observer) as scheduler:
            scheduler.sync(targets)
            figures = await window.measure()
            # Keep firing for as long as the least code does, so a probe due in the window
            # but started late is counted on both sides alike.
            await asyncio.sleep(timeout)
            await scheduler.close(grace_seconds=timeout)  # the outcomes of the last ones
    return figures, window


async def _least_code(
    urls: list[str], interval: float, intervals: int
) -> tuple[dict[str, Any], _Window]:
    import aiohttp

    loop = asyncio.get_running_loop()
    window = _Window(loop.time(), interval, intervals)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def probe(url: str) -> str:
            try:
                async with asyncio.timeout(min(TIMEOUT_SECONDS, interval)):
                    if url.startswith("tcp://"):
                        host, port = url[6:].rsplit(":", 1)
                        _, writer = await asyncio.open_connection(host, int(port))
                        writer.close()
                        return "up"
                    async with session.get(url) as response:
                        await response.read()
                        return "up" if response.status < 300 else "down"
            except Exception as exc:
                return type(exc).__name__

        async def every(target_id: int, url: str) -> None:
            due = loop.time() + random.random() * interval
            while True:
                await asyncio.sleep(due - loop.time())
                counted = window.started(target_id, loop.time() - due)
                outcome = await probe(url)
                if counted:
                    window.outcomes[outcome] += 1
                due += interval

        tasks = [asyncio.create_task(every(i, url)) for i, url in enumerate(urls)]
        figures = await window.measure()
        await asyncio.sleep(min(TIMEOUT_SECONDS, interval))  # the outcomes of the last ones
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return figures, window


async def _client(kind: str, urls: list[str], interval: float, intervals: int) -> dict[str, Any]:
    if kind.startswith("least-code"):
        figures, window = await _least_code(urls, interval, intervals)
    else:
        keep_alive = kind != "engine-no-keepalive"
        figures, window = await _engine(urls, interval, intervals, keep_alive)
    lags = sorted(window.lags)

    def pct(q: float) -> float:
        return lags[min(len(lags) - 1, int(q * len(lags)))] * 1000 if lags else float("nan")

    counts = Counter(window.per_target[i] for i in range(len(urls)))
    return figures | {
        "probes": window.started_in_window,
        "probes_due": len(lags),
        "min_gap_seconds": window.min_gap if window.min_gap < math.inf else None,
        "close_pairs": window.close_pairs,
        "lag_ms": {"p50": pct(0.5), "p95": pct(0.95), "p99": pct(0.99), "max": pct(1.0)},
        "probes_per_target": {str(k): v for k, v in sorted(counts.items())},
        "outcomes": dict(window.outcomes.most_common()),
    }


# -- the run ----------------------------------------------------------------------------
MODULE = "switchyard_devtools.bench.probes"


def measure(counts: list[int], interval: float, intervals: int) -> list[dict[str, Any]]:
    """Every client against ``count`` targets, for each count."""
    _more_files()
    rows = []
    clients = os.environ.get("BENCH_PROBES_CLIENTS", ",".join(CLIENTS)).split(",")
    for count in counts:
        for kind in clients:
            rows.append({"targets": count, "client": kind} | _one(kind, count, interval, intervals))
    return rows


def _one(kind: str, count: int, interval: float, intervals: int) -> dict[str, Any]:
    # A new server (new ports) per client: thousands of short connections to one port
    # leave as many TIME_WAIT sockets, and a later client's SYN landing on one of them
    # waits for a retransmission (seconds); real targets are spread over many hosts.
    server = subprocess.Popen(
        [sys.executable, "-m", MODULE, "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None
    assert server.stdout is not None
    try:
        ports = server.stdout.readline().strip()
        json.loads(ports)
        args = [kind, str(count), str(interval), str(intervals), ports]
        done = subprocess.run(
            [sys.executable, "-m", MODULE, "client", *args],
            capture_output=True,
            text=True,
            timeout=interval * (intervals + 2) + 120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"the {kind} client failed:\n{done.stderr[-3000:]}")
        figures: dict[str, Any] = json.loads(done.stdout)
    finally:
        server.stdin.close()
        server.wait(timeout=30)
    return figures


def markdown(rows: list[dict[str, Any]], interval: float, intervals: int) -> str:
    lines = [
        "## Probes",
        "",
        f"One client process probing N local targets every {interval:g} s (80 % fast, 10 % "
        f"answering after {SLOW_SECONDS:g} s, 5 % refusing, 5 % TCP), measured over "
        f"{intervals} intervals after a warm-up one. Lag = probe start - scheduled time. "
        "A probe counts in the interval it was due in (a late one is not a double probe); "
        "the gap is the least time between two starts of one target. CPU = the client "
        "process's user + system time (getrusage) / probes started in the window; cores = "
        "CPU time / wall time. `least-code`: one asyncio task per target, "
        "`sleep; session.get; read`. Machine load: the 1-minute load average before and "
        f"after the window, on {os.cpu_count()} cores.",
        "",
        "| targets | client | probes/s | targets probed once per interval (by due time) | "
        "least gap between a target's probes (s) | "
        "lag p50 / p95 / p99 / max (ms) | CPU per probe (µs) | cores | machine load |",
        "|---:|---|---:|---|---:|---|---:|---:|---|",
    ]
    for row in rows:
        per_target = row["probes_per_target"]
        exact = per_target.get(str(intervals), 0)
        other = ", ".join(f"{n}x: {c}" for n, c in per_target.items() if n != str(intervals))
        lag = row["lag_ms"]
        lines.append(
            f"| {row['targets']:,} | {row['client']} | {row['probes'] / row['wall_seconds']:,.0f} "
            f"| {exact:,}/{row['targets']:,}{f' ({other})' if other else ''} "
            f"| {_gap(row, interval)} "
            f"| {lag['p50']:.1f} / {lag['p95']:.1f} / {lag['p99']:.1f} / {lag['max']:.1f} "
            f"| {row['cpu_seconds'] / max(row['probes'], 1) * 1e6:,.0f} "
            f"| {row['cpu_seconds'] / row['wall_seconds']:.2f} "
            f"| {row['load_before']:.1f} → {row['load_after']:.1f} |"
        )
    lines += ["", "Outcomes:"] + [
        f"- {r['targets']:,} {r['client']}: "
        + ", ".join(f"{k} {v:,}" for k, v in r["outcomes"].items())
        for r in rows
    ]
    return "\n".join(lines)


def _gap(row: dict[str, Any], interval: float) -> str:
    gap = row.get("min_gap_seconds")
    if gap is None:
        return "-"
    close = row.get("close_pairs", 0)
    return f"{gap:.2f}" + (f" ({close:,} under {interval / 2:g} s)" if close else "")


def run(workdir: Path) -> str:
    counts = [int(n) for n in os.environ.get("BENCH_PROBES_TARGETS", "2000,10000").split(",")]
    interval = float(os.environ.get("BENCH_PROBES_INTERVAL", "10"))
    intervals = int(os.environ.get("BENCH_PROBES_INTERVALS", "3"))
    rows = measure(counts, interval, intervals)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "probes.json").write_text(json.dumps(rows, indent=2))
    return markdown(rows, interval, intervals)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        _more_files()
        asyncio.run(_serve())
        return
    if len(sys.argv) > 1 and sys.argv[1] == "client":
        kind, count, interval, intervals, ports = sys.argv[2:7]
        _more_files()
        urls = _urls(int(count), json.loads(ports))
        figures = asyncio.run(_client(kind, urls, float(interval), int(intervals)))
        print(json.dumps(figures))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", default="2000,10000")
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--intervals", type=int, default=3)
    parser.add_argument("--workdir", default="var/bench/probes", type=Path)
    args = parser.parse_args()
    os.environ["BENCH_PROBES_TARGETS"] = args.targets
    os.environ["BENCH_PROBES_INTERVAL"] = str(args.interval)
    os.environ["BENCH_PROBES_INTERVALS"] = str(args.intervals)
    print(run(args.workdir))


if __name__ == "__main__":
    main()
