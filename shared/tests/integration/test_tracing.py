"""One trace from the HTTP request, through the outbox and Kafka, to the consumer.

Runs in a subprocess: the OpenTelemetry tracer provider is process-global, and switching
it on here would change every other test's logs.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from switchyard.config import Settings
from switchyard_devtools.testing.infra import settings_env

pytestmark = pytest.mark.integration

SCRIPT = textwrap.dedent("""
    import threading
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from switchyard import tracing
    from switchyard.config import load_settings
    from switchyard.db.engine import create_engine
    from switchyard.kafka.consumer import ConsumerRunner, RunnerOptions
    from switchyard.kafka.producer import EventProducer
    from switchyard.kafka.topics import USERS, topic_name
    from switchyard.lifecycle import StopSignal
    from switchyard.outbox import OutboxRelay

    exporter = InMemorySpanExporter()
    tracing.configure_tracing("api", None, exporter=exporter)
    settings = load_settings()

    from switchyard_api.app import create_app
    client = create_app(settings).test_client()
    import uuid
    marker = f"Traced {uuid.uuid4().hex}"
    response = client.post("/users", json={"name": marker, "mobile": "+1 555 0199",
                                           "latitude": 1.0, "longitude": 2.0})
    assert response.status_code == 201

    producer = EventProducer(settings)
    relay = OutboxRelay(create_engine(settings), producer, settings.outbox)
    while relay.run_once():
        pass

    seen = threading.Event()
    stop = StopSignal()
    def handler(events):
        # Other tests publish to this topic too (some with the same keys): match our event.
        if any((e.event.data or {}).get("name") == marker for e in events):
            seen.set()
            stop.set()
    runner = ConsumerRunner(settings, "trace-test", [topic_name(settings, USERS)], handler,
                            producer, stop, RunnerOptions())
    thread = threading.Thread(target=runner.run)
    thread.start()
    seen.wait(60)
    stop.set()
    thread.join(30)
    producer.close()

    spans = exporter.get_finished_spans()
    http = [s for s in spans if s.name == "POST /users"]
    consume = [s for s in spans if s.name.startswith("consume ")]
    assert seen.is_set(), "consumer never saw the event"
    assert http and consume, [s.name for s in spans]
    same_trace = [s for s in consume if s.context.trace_id == http[0].context.trace_id]
    assert same_trace, "no consumer span continued the request's trace"
    assert same_trace[0].parent is not None  # a child across Kafka, not a new root
    print("ONE-TRACE", format(http[0].context.trace_id, "032x"))
""")


def test_http_request_outbox_and_consumer_share_one_trace(settings: Settings) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=settings_env(settings), capture_output=True, timeout=120
    )
    output = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    assert "ONE-TRACE" in output
