"""The built-in job types of SPEC section 8, one module per kind of work.

Importing this package binds them in :data:`switchyard_job_worker.registry.REGISTRY`.
"""

from __future__ import annotations

from switchyard_job_worker.handlers import basic, http_request, logs_retention

__all__ = ["basic", "http_request", "logs_retention"]
