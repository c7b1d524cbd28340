"""One span per attempt, continuing the trace whose ``traceparent`` the claim returned.

Runs in a subprocess: the OpenTelemetry tracer provider is process-global."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import dataclasses, time
    from typing import Any, cast
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from switchyard import tracing
    from switchyard.config import load_settings
    from switchyard_job_worker.handlers import basic  # noqa: F401 (binds echo)
    from switchyard_job_worker.pool import JobPool
    from switchyard_job_worker.registry import REGISTRY, Resources

    exporter = InMemorySpanExporter()
    tracing.configure_tracing("job-worker", None, exporter=exporter)
    import conftest
    results = []
    pool = JobPool(REGISTRY, Resources(cast(Any, None), cast(Any, None)), load_settings(),
                   results.append).start()
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    first = dataclasses.replace(conftest.claimed("echo", {"a": 1}),
                                traceparent=f"00-{trace_id}-{parent_id}-01")
    second = dataclasses.replace(first, lease_token=first.lease_token + 1000, attempt=2)
    pool.submit([first, second])
    deadline = time.monotonic() + 10
    while len(results) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    pool.stop()
    spans = [s for s in exporter.get_finished_spans() if s.name == "job echo"]
    assert len(spans) == 2, [s.name for s in exporter.get_finished_spans()]
    for span in spans:
        assert format(span.context.trace_id, "032x") == trace_id
        assert format(span.parent.span_id, "016x") == parent_id
    assert sorted(s.attributes["job.attempt"] for s in spans) == [1, 2]
    print("ok")
""")


def test_each_attempt_is_a_span_of_the_jobs_trace() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parent,
    )
    assert done.returncode == 0 and done.stdout.strip().endswith("\nok"), done.stderr[-3000:]
