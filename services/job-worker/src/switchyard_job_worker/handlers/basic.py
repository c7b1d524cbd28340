"""``echo``, ``sleep`` and ``fail``: jobs for demos, tests and benchmarks.

Guarantee: none of them has an effect outside its result, so running one twice is
harmless; ``fail`` decides from the attempt number alone, so its outcome is the same on
whichever worker the attempt runs.
"""

from __future__ import annotations

import asyncio
from typing import Any

from switchyard.jobs.types import EchoPayload, FailPayload, SleepPayload
from switchyard_job_worker.registry import JobContext, JobFailed, handler


@handler("echo")
async def echo(payload: EchoPayload, job: JobContext) -> dict[str, Any]:
    return payload.model_dump(mode="json")


@handler("sleep")
async def sleep(payload: SleepPayload, job: JobContext) -> dict[str, float]:
    await asyncio.sleep(payload.seconds)
    return {"slept": payload.seconds}


@handler("fail")
async def fail(payload: FailPayload, job: JobContext) -> dict[str, int]:
    if job.attempt <= payload.times:
        raise JobFailed(f"failing on purpose: attempt {job.attempt} of the first {payload.times}")
    return {"failed_attempts": payload.times, "attempt": job.attempt}
