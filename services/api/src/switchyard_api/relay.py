"""The outbox relay process: ``switchyard-api relay``."""

from __future__ import annotations

from switchyard.outbox import OutboxRelay
from switchyard.service import WorkerContext, run_worker


def relay_loop(context: WorkerContext) -> None:
    OutboxRelay(context.engine, context.producer, context.settings.outbox).run(context.stop)


def main() -> None:
    run_worker("outbox-relay", relay_loop, needs=("postgres", "kafka"))
