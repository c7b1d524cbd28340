"""The handler registry: each job type of the catalogue bound to exactly one handler.

Guarantee: a handler is bound only to a name of :data:`switchyard.jobs.types.CATALOGUE`,
once, as an ``async def`` whose first parameter is that type's payload model (checked
when it is decorated, so a mismatch fails at import, not on the first job); and
:meth:`Registry.require_complete` refuses to start a worker that lacks a handler for
any type the API accepts. A handler receives its payload validated by the model, so it
never parses JSON itself.

Adding a type: its payload model goes into the catalogue (the API validates with it),
its handler here::

    @handler("sleep")
    async def sleep(payload: SleepPayload, job: JobContext) -> dict[str, float]:
        await asyncio.sleep(payload.seconds)
        return {"slept": payload.seconds}

A handler must not block the event loop: blocking work goes to ``asyncio.to_thread``,
bounded by ``job.remaining()`` (the attempt's timeout cancels the coroutine, not a
thread). What it returns must be JSON (it becomes the job's ``result``); to fail the
attempt it raises, :class:`JobFailed` for a plain message.
"""

from __future__ import annotations

import asyncio
import inspect
import typing
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
import structlog
from pydantic import BaseModel

from switchyard.config import Settings
from switchyard.fetch.fetcher import Fetcher
from switchyard.jobs.types import CATALOGUE

P = TypeVar("P", bound=BaseModel)
HandlerFn = Callable[[P, "JobContext"], Awaitable[Any]]


class RegistryError(Exception):
    """A handler is bound wrongly, or a job type has none: the worker must not start."""


class JobFailed(Exception):
    """Raised by a handler to fail the attempt with exactly this message."""


class JobFailedForGood(JobFailed):
    """Raised by a handler for a job that can never succeed: it goes ``dead`` at once,
    whatever attempts it has left (a URL the SSRF guard refuses, ...)."""


@dataclass(frozen=True)
class Resources:
    """What handlers share: the database and the guarded HTTP client."""

    engine: sa.Engine
    fetcher: Fetcher


@dataclass(frozen=True)
class JobContext:
    """One attempt of one job, as its handler sees it."""

    job_id: str
    type: str
    attempt: int  # 1 for the first
    max_attempts: int
    log: structlog.stdlib.BoundLogger
    settings: Settings
    resources: Resources
    deadline: float  # the event loop's clock: the attempt times out then

    def remaining(self) -> float:
        """Seconds left before the attempt times out (on the loop's thread only)."""
        return max(0.0, self.deadline - asyncio.get_running_loop().time())


@dataclass(frozen=True)
class Handler:
    name: str
    model: type[BaseModel]
    run: HandlerFn[Any]


class Registry:
    def __init__(self, catalogue: Mapping[str, type[BaseModel]] = CATALOGUE) -> None:
        self.catalogue = dict(catalogue)
        self._handlers: dict[str, Handler] = {}

    def handler(self, name: str) -> Callable[[HandlerFn[P]], HandlerFn[P]]:
        """Bind the decorated ``async def`` to job type ``name``."""
        model = self.catalogue.get(name)
        if model is None:
            known = ", ".join(sorted(self.catalogue))
            raise RegistryError(f"job type {name!r} is not in the catalogue ({known})")

        def bind(fn: HandlerFn[P]) -> HandlerFn[P]:
            where = f"handler {getattr(fn, '__qualname__', fn)!r} for {name!r}"
            if name in self._handlers:
                raise RegistryError(f"{where}: {name!r} already has a handler")
            if not inspect.iscoroutinefunction(fn):
                raise RegistryError(f"{where}: must be an async def")
            hints = [h for k, h in typing.get_type_hints(fn).items() if k != "return"]
            if not hints or not (isinstance(hints[0], type) and issubclass(model, hints[0])):
                raise RegistryError(
                    f"{where}: its first parameter must be annotated {model.__name__}"
                )
            self._handlers[name] = Handler(name, model, fn)
            return fn

        return bind

    def get(self, name: str) -> Handler | None:
        return self._handlers.get(name)

    def names(self) -> list[str]:
        return sorted(self._handlers)

    def require_complete(self) -> None:
        """:class:`RegistryError` naming every catalogue type without a handler."""
        missing = sorted(set(self.catalogue) - set(self._handlers))
        if missing:
            raise RegistryError(
                "no handler for job type(s) " + ", ".join(missing) + "; every type of "
                "switchyard.jobs.types.CATALOGUE needs one (@handler(name))"
            )


REGISTRY = Registry()
handler = REGISTRY.handler
