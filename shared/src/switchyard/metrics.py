"""Prometheus metrics, correct under several gunicorn workers.

Every metric of the platform is declared here, once. When ``PROMETHEUS_MULTIPROC_DIR``
is set (the API's gunicorn config sets it before any worker starts), each process writes
its samples to that folder and :func:`render` aggregates them.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

# HTTP
http_requests_total = Counter(
    "http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
http_request_duration_seconds = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)

# Ingest (seed 001)
ingest_requests_total = Counter("ingest_requests_total", "Ingest requests received", ["kind"])
ingest_errors_total = Counter("ingest_errors_total", "Ingest requests refused", ["kind", "reason"])
ingest_events_total = Counter("ingest_events_total", "Events accepted for ingest", ["kind"])

# Batching and sinks (seed 001)
batch_size = Histogram(
    "batch_size",
    "Records per flushed batch",
    ["topic"],
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
)
batches_flushed_total = Counter("batches_flushed_total", "Batches flushed", ["topic", "reason"])
worker_failures_total = Counter(
    "worker_failures_total", "Failed sink writes; image-worker work given up", ["sink"]
)
worker_retries_total = Counter(
    "worker_retries_total", "Retried sink writes; image-worker work retried", ["sink"]
)
write_latency_seconds = Histogram(
    "write_latency_seconds", "Sink write latency", ["sink"], buckets=LATENCY_BUCKETS
)
end_to_end_latency_seconds = Histogram(
    "end_to_end_latency_seconds",
    "Accepted at the API to committed row",
    ["topic"],
    buckets=LATENCY_BUCKETS,
)

# Jobs (seed 003): the job-worker. A failed attempt that goes to a retry tier also counts
# in worker_retries_total{sink="jobs"}; a job that goes dead (to jobs.dlq) in
# worker_failures_total{sink="jobs"}. Consumer lag is kafka_consumer_lag (the job-worker's
# groups).
JOB_BUCKETS = (*LATENCY_BUCKETS, 60, 300, 900, 3600)
jobs_processed_total = Counter(
    "jobs_processed_total",
    "Job attempts finished; status: succeeded|failed|timed_out",
    ["type", "status"],
)
jobs_in_progress = Gauge(
    "jobs_in_progress", "Jobs running now", ["type"], multiprocess_mode="livesum"
)
job_latency_seconds = Histogram(
    "job_latency_seconds",
    "Job latency; phase: queue_wait (ready to started) | run (one attempt)",
    ["type", "phase"],
    buckets=JOB_BUCKETS,
)
jobs_dead_letter_depth = Gauge(
    "jobs_dead_letter_depth", "Jobs dead (in jobs.dlq), not retried yet", multiprocess_mode="max"
)

# Product images (seed 002): the image-worker. Its retries and failures also count in
# worker_retries_total{sink="image_fetch"} (a download retried after a transient failure)
# and worker_failures_total{sink="images"} (an image failed) / {sink="products"} (a
# product's processing given up as a whole).
IMAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
images_processed_total = Counter(
    "images_processed_total",
    "Product images finished; reason: compressed|reused (ok) or the failure's reason code",
    ["result", "reason"],
)
image_bytes_total = Counter(
    "image_bytes_total", "Image bytes downloaded (in) and stored per image (out)", ["direction"]
)
image_download_seconds = Histogram(
    "image_download_seconds",
    "One image download attempt, successful or not",
    buckets=IMAGE_BUCKETS,
)
image_compress_seconds = Histogram(
    "image_compress_seconds",
    "Decoding, resizing and encoding one image",
    buckets=IMAGE_BUCKETS,
)
products_processed_total = Counter(
    "products_processed_total", "Products whose processing finished", ["status"]
)
products_by_status = Gauge(
    "products_by_status", "Products per processing status", ["status"], multiprocess_mode="max"
)

# Health checker (seed 001): the probing engine. result up|down; reason "ok" for up, else
# the probe's failure reason (switchyard_health_checker.targets.REASONS).
PROBE_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
health_probes_total = Counter(
    "health_probes_total", "Probes finished, by result and reason", ["result", "reason"]
)
health_probe_latency_seconds = Histogram(
    "health_probe_latency_seconds",
    "Time from a probe's start to its answer or failure",
    ["kind"],
    buckets=LATENCY_BUCKETS,
)
health_probe_lag_seconds = Histogram(
    "health_probe_lag_seconds",
    "How late a probe started against its schedule (waiting for a slot included)",
    buckets=PROBE_LAG_BUCKETS,
)
health_probes_in_flight = Gauge(
    "health_probes_in_flight", "Probes holding a slot now", multiprocess_mode="livesum"
)
health_targets_scheduled = Gauge(
    "health_targets_scheduled", "Targets this replica schedules", multiprocess_mode="livesum"
)
health_probes_skipped_total = Counter(
    "health_probes_skipped_total",
    "Scheduled probes not started because the target's previous one was still running",
)
health_probe_results_dropped_total = Counter(
    "health_probe_results_dropped_total",
    "Probe results thrown away because their target was removed or changed meanwhile",
)
# The service around the engine: shards leased, changes of status recorded (status "down"
# and the "up" ending an incident are announced as target.down / target.up; a target's
# first "up" is recorded only), check results that could not be handed to Kafka.
health_shards_owned = Gauge(
    "health_shards_owned",
    "Shards of targets this replica holds a lease on",
    multiprocess_mode="livesum",
)
health_status_changes_total = Counter(
    "health_status_changes_total",
    "Changes of a target's status recorded, by new status",
    ["status"],
)
health_checks_unpublished_total = Counter(
    "health_checks_unpublished_total",
    "Check results in batches the producer refused (buffer full): gaps in the history",
)

# Kafka plumbing
events_published_total = Counter(
    "events_published_total", "Events acknowledged by Kafka", ["topic"]
)
events_consumed_total = Counter(
    "events_consumed_total", "Events handled by a consumer", ["topic", "group", "outcome"]
)
# One child per partition a member of this process owns (removed when it loses it), so
# several consumer threads never overwrite each other; sum by (group, topic) for a topic.
kafka_consumer_lag = Gauge(
    "kafka_consumer_lag",
    "Records of a partition not yet committed by its consumer group (high watermark - "
    "committed offset), as seen by the member that owns it",
    ["group", "topic", "partition"],
    multiprocess_mode="livesum",
)
dead_letters_total = Counter("dead_letters_total", "Events sent to a dead-letter topic", ["topic"])
outbox_pending = Gauge("outbox_pending", "Outbox rows not yet published", multiprocess_mode="max")
outbox_published_total = Counter("outbox_published_total", "Outbox rows relayed to Kafka")

# Cache
cache_requests_total = Counter("cache_requests_total", "Cache look-ups", ["cache", "result"])


def render() -> tuple[bytes, str]:
    """The metrics page for this process, or for every worker when in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
