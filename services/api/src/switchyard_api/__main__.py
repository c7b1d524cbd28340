"""``switchyard-api serve`` (gunicorn), ``switchyard-api relay`` (the outbox relay) and
``switchyard-api grpc`` (the jobs API over gRPC)."""

from __future__ import annotations

import sys

import click

from switchyard_api.grpc import DEFAULT_PORT


@click.group()
def main() -> None:
    """The Switchyard API service."""


@main.command()
def serve() -> None:
    """Serve HTTP with gunicorn (bind, workers and threads from API__* settings)."""
    from gunicorn.app.wsgiapp import run

    from switchyard.config import ConfigError, load_settings

    try:
        # A bad value (a placeholder ADMIN_TOKEN, ...) stops us here, clearly; not cached:
        # gunicorn_conf reads the settings after naming the service.
        load_settings()
    except ConfigError as exc:
        print(f"switchyard-api: {exc}", file=sys.stderr)
        raise SystemExit(2) from None

    sys.argv = [
        "switchyard-api",
        "-c",
        "python:switchyard_api.gunicorn_conf",
        "switchyard_api.app:create_app()",
    ]
    run()


@main.command()
def relay() -> None:
    """Relay outbox rows to Kafka until SIGTERM."""
    from switchyard_api.relay import main as relay_main

    relay_main()


@main.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help=f"gRPC port (0: any free one, logged)  [default: API__GRPC_PORT, {DEFAULT_PORT}]",
)
@click.option("--host", default=None, help="Interface to listen on  [default: API__HOST]")
@click.option(
    "--grace-seconds",
    type=click.FloatRange(0, 3600),
    default=20.0,
    show_default=True,
    help="On SIGTERM, how long calls in flight may take to finish.",
)
def grpc(port: int | None, host: str | None, grace_seconds: float) -> None:
    """Serve the jobs API over gRPC (switchyard.jobs.v1.Jobs) until SIGTERM."""
    from switchyard_api.grpc.server import main as grpc_main

    grpc_main(host, port, grace_seconds)


if __name__ == "__main__":
    main()
