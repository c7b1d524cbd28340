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
from switchyard.testing.infra import settings_env

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
    response = client.post("/users", json={"name": "Traced", "mobile": "+1 555 0199",
                                           "latitude": 1.0, "longitude": 2.0})
    user_id = str(response.get_json()["id"])

    producer = EventProducer(settings)
    relay = OutboxRelay(create_engine(settings), producer, settings.outbox)
    while relay.run_once():
        pass

    seen = threading.Event()
    stop = StopSignal()
    def handler(events):
        if any(e.key == user_id.encode() for e in events):
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
    assert consume[-1].context.trace_id == http[0].context.trace_id
    print("ONE-TRACE", format(http[0].context.trace_id, "032x"))
""")


def test_http_request_outbox_and_consumer_share_one_trace(settings: Settings) -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=settings_env(settings),
                            capture_output=True, timeout=120)
    output = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    assert "ONE-TRACE" in output
