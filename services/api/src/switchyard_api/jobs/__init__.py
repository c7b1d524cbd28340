"""``/jobs``, ``/schedules`` and ``/admin/jobs``: the HTTP side of background jobs.

All SQL is in :mod:`switchyard.jobs.store`; this package validates requests against the
job-type catalogue, answers with the documented shapes, and maps the store's outcomes to
statuses (409 for a job in the wrong state, 503 when PostgreSQL does not answer).
"""
