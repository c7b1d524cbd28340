"""OpenTelemetry, switched on only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.

Trace context crosses Kafka as a W3C ``traceparent`` header, so one trace runs from the
HTTP request through the topic to the consumer that writes the row.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract, inject

_enabled = False


def configure_tracing(service: str, endpoint: str | None, exporter: Any = None) -> bool:
    """Export spans of ``service`` over OTLP/HTTP to ``endpoint`` (or to ``exporter``)."""
    global _enabled
    if (not endpoint and exporter is None) or _enabled:
        return _enabled
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}".rstrip("/") + "/v1/traces"))
        )
    trace.set_tracer_provider(provider)
    _enabled = True
    return True


def enabled() -> bool:
    return _enabled


def current_trace_id() -> str | None:
    if not _enabled:
        return None
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None


def inject_headers() -> dict[str, str]:
    """The current trace context as headers (``traceparent``); empty when tracing is off."""
    carrier: dict[str, str] = {}
    if _enabled:
        inject(carrier)
    return carrier


@contextlib.contextmanager
def span(
    name: str, parent_headers: Mapping[str, str] | None = None, **attributes: Any
) -> Iterator[None]:
    """A span named ``name``, continuing the trace in ``parent_headers`` when given."""
    if not _enabled:
        yield
        return
    token = None
    if parent_headers:
        token = otel_context.attach(extract(dict(parent_headers)))
    try:
        with trace.get_tracer("switchyard").start_as_current_span(name, attributes=attributes):
            yield
    finally:
        if token is not None:
            otel_context.detach(token)
