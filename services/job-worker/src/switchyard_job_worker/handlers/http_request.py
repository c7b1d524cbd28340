"""``http.request``: call a URL (webhook delivery) through the SSRF guard.

Guarantee: the call goes through :meth:`switchyard.fetch.fetcher.Fetcher.request`, so it
reaches only addresses the guard accepts (``FETCH__ALLOW`` for private ones), follows at
most ``FETCH__MAX_REDIRECTS`` re-checked redirects, and reads at most
``JOBS__HTTP_BODY_EXCERPT_BYTES`` of the answer; a non-2xx answer fails the attempt with
its status in the error (the job is retried). The receiver sees the same request again
on a retry, so it should dedupe, e.g. on the job id sent in ``X-Job-Id``.
"""

from __future__ import annotations

from typing import Any

from switchyard.fetch.errors import FetchError, PermanentFetchError
from switchyard.jobs.types import HttpRequestPayload
from switchyard_job_worker.registry import JobContext, JobFailed, JobFailedForGood, handler

# The response headers kept in the result; the rest say little about a delivery.
SHOWN_HEADERS = ("content-type", "content-length", "location", "retry-after", "date", "etag")


@handler("http.request")
async def http_request(payload: HttpRequestPayload, job: JobContext) -> dict[str, Any]:
    headers = {"X-Job-Id": job.job_id, **payload.headers}
    try:
        response = await job.resources.fetcher.request(
            payload.method,
            str(payload.url),
            headers,
            payload.body,
            timeout_seconds=payload.timeout_seconds,
            max_body_bytes=job.settings.jobs.http_body_excerpt_bytes,
        )
    except PermanentFetchError as exc:  # refused by the guard, bad TLS, redirect loop
        raise JobFailedForGood(f"{exc.reason}: {exc}") from exc
    except FetchError as exc:
        raise JobFailed(f"{exc.reason}: {exc}") from exc
    excerpt = response.content.decode("utf-8", "replace")
    if not 200 <= response.status < 300:
        raise JobFailed(f"HTTP {response.status} from {response.url}: {excerpt[:300]!r}")
    return {
        "status": response.status,
        "url": response.url,
        "headers": {k: response.headers[k] for k in SHOWN_HEADERS if k in response.headers},
        "body_excerpt": excerpt,
        "body_truncated": response.truncated,
    }
