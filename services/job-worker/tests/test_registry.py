"""The handler registry: what may be bound, and the start-up check."""

from __future__ import annotations

import pytest

from switchyard.jobs.types import CATALOGUE, EchoPayload, SleepPayload
from switchyard_job_worker.registry import REGISTRY, JobContext, Registry, RegistryError


def test_every_catalogue_type_has_a_built_in_handler() -> None:
    import switchyard_job_worker.handlers  # noqa: F401

    REGISTRY.require_complete()
    assert REGISTRY.names() == sorted(CATALOGUE)


def test_a_missing_handler_refuses_to_start_naming_the_types() -> None:
    registry = Registry()

    @registry.handler("echo")
    async def echo(payload: EchoPayload, job: JobContext) -> None:
        return None

    with pytest.raises(RegistryError) as caught:
        registry.require_complete()
    message = str(caught.value)
    assert "fail" in message and "http.request" in message and "echo" not in message


def test_a_name_outside_the_catalogue_is_refused() -> None:
    with pytest.raises(RegistryError, match="not in the catalogue"):
        Registry().handler("resize-images")


def test_a_second_handler_for_a_type_is_refused() -> None:
    registry = Registry()

    @registry.handler("echo")
    async def first(payload: EchoPayload, job: JobContext) -> None:
        return None

    with pytest.raises(RegistryError, match="already has a handler"):

        @registry.handler("echo")
        async def second(payload: EchoPayload, job: JobContext) -> None:
            return None


def test_a_handler_must_be_async_and_take_its_types_payload_model() -> None:
    registry = Registry()
    with pytest.raises(RegistryError, match="async def"):

        @registry.handler("echo")
        def not_async(payload: EchoPayload, job: JobContext) -> None:  # type: ignore[arg-type]
            return None

    with pytest.raises(RegistryError, match="SleepPayload"):

        @registry.handler("sleep")
        async def wrong_model(payload: EchoPayload, job: JobContext) -> None:
            return None

    @registry.handler("sleep")
    async def right(payload: SleepPayload, job: JobContext) -> None:
        return None

    assert registry.get("sleep") is not None
