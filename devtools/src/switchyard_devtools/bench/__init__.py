"""``switchyard bench``: each module here measures one thing and returns a Markdown section.

A benchmark module defines ``NAME`` and ``run(workdir: Path) -> str``. It starts what it
needs itself (embedded servers through :mod:`switchyard_devtools.testing.infra` unless URLs are
given, service processes through :mod:`switchyard_devtools.bench.stack`), so the figures always
come from the whole stack on this machine.
"""

from __future__ import annotations

import importlib
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

# Modules listed here run in this order; add yours.
BENCHMARKS: list[str] = ["flash_sale", "ingest", "batcher", "images", "jobs", "probes"]


def machine_description() -> str:
    import os

    memory = ""
    try:
        with open("/proc/meminfo") as meminfo:
            kib = int(meminfo.readline().split()[1])
            memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}){memory}, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )


def run_benchmarks(names: list[str], output: Path, workdir: Path) -> str:
    sections = [
        "# Benchmark results",
        "",
        f"Run {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} on {machine_description()}, "
        "with the whole stack (PostgreSQL, Redis, Kafka, services) on the same machine.",
        "",
    ]
    for name in names or BENCHMARKS:
        module = importlib.import_module(f"switchyard_devtools.bench.{name}")
        started = time.monotonic()
        sections.append(module.run(workdir / name))
        sections.append(f"\n_{name} took {time.monotonic() - started:.0f} s._\n")
    text = "\n".join(sections)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    return text
