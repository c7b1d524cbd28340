"""The jobs API over gRPC (SPEC section 8's enqueue, get and cancel, for any language).

* ``services/api/proto/switchyard/jobs/v1/jobs.proto`` — the contract.
* :mod:`.gen` — the Python modules protoc makes from it, committed (why: the generator,
  ``services/api/proto/generate.py``).
* :mod:`.convert` — messages to and from the HTTP API's JSON.
* :mod:`.service` — Enqueue, GetJob, CancelJob on ``switchyard.jobs.store``.
* :mod:`.server` — the process: thread pool, request ids, status codes, health,
  reflection, graceful stop (``switchyard-api grpc``).
"""

# The well-known gRPC port; `switchyard-api grpc --port` chooses another.
DEFAULT_PORT = 50051
