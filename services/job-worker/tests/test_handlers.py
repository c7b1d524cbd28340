"""The built-in handlers called directly (http.request against a real local server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import pytest
import structlog
from aiohttp import web

from switchyard.config import FetchSettings
from switchyard.fetch.fetcher import Fetcher
from switchyard.jobs.types import FailPayload, HttpRequestPayload, SleepPayload, validate_payload
from switchyard_job_worker.handlers import basic, http_request
from switchyard_job_worker.registry import JobContext, JobFailed, JobFailedForGood, Resources

from .conftest import unit_settings


def context(attempt: int = 1, fetcher: Fetcher | None = None, **jobs: Any) -> JobContext:
    return JobContext(
        "5f0c5f0c-1111-4aaa-8bbb-000000000009",
        "test",
        attempt,
        5,
        structlog.get_logger(),
        unit_settings(**jobs),
        Resources(cast(Any, None), cast(Any, fetcher)),
        deadline=float("inf"),
    )


def test_echo_returns_its_payload_and_sleep_sleeps() -> None:
    payload = validate_payload("echo", {"a": [1, 2], "b": {"c": None}})
    assert asyncio.run(basic.echo(payload, context())) == {"a": [1, 2], "b": {"c": None}}
    assert asyncio.run(basic.sleep(SleepPayload(seconds=0.01), context())) == {"slept": 0.01}


def test_fail_fails_its_first_n_attempts_then_succeeds() -> None:
    payload = FailPayload(times=2)
    for attempt in (1, 2):
        with pytest.raises(JobFailed, match=f"attempt {attempt} of the first 2"):
            asyncio.run(basic.fail(payload, context(attempt)))
    assert asyncio.run(basic.fail(payload, context(3))) == {"failed_attempts": 2, "attempt": 3}


@asynccontextmanager
async def hook_server() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        seen.append({"headers": dict(request.headers), "body": await request.json()})
        status = int(request.query.get("status", "200"))
        return web.Response(status=status, text="é" + "x" * 5_000, content_type="text/plain")

    app = web.Application()
    app.add_routes([web.post("/hook", hook)])
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/hook", seen
    finally:
        await runner.cleanup()


def test_http_request_keeps_status_headers_and_a_bounded_excerpt() -> None:
    async def scenario() -> None:
        async with (
            hook_server() as (url, seen),
            Fetcher(FetchSettings(allow=("127.0.0.1/32",))) as fetcher,
        ):
            payload = HttpRequestPayload.model_validate(
                {"url": url, "headers": {"X-Signature": "abc"}, "body": {"order": 1}}
            )
            job = context(fetcher=fetcher, http_body_excerpt_bytes=100)
            result = await http_request.http_request(payload, job)
            assert result["status"] == 200 and result["body_truncated"] is True
            assert result["body_excerpt"] == "é" + "x" * 98  # 100 bytes, é is two
            assert result["headers"]["content-type"].startswith("text/plain")
            (request,) = seen
            assert request["body"] == {"order": 1}
            assert request["headers"]["X-Signature"] == "abc"
            assert request["headers"]["X-Job-Id"] == job.job_id

            failing = payload.model_copy(update={"url": f"{url}?status=503"})
            with pytest.raises(JobFailed, match="HTTP 503"):
                await http_request.http_request(failing, job)

    asyncio.run(scenario())


def test_http_request_to_a_refused_address_fails_for_good_with_the_reason() -> None:
    async def scenario() -> None:
        async with hook_server() as (url, seen), Fetcher(FetchSettings()) as fetcher:
            payload = HttpRequestPayload.model_validate({"url": url})
            with pytest.raises(JobFailedForGood, match="refused_address"):
                await http_request.http_request(payload, context(fetcher=fetcher))
            assert seen == []

    asyncio.run(scenario())
