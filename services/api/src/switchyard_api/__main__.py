"""``switchyard-api serve`` (gunicorn) and ``switchyard-api relay`` (the outbox relay)."""

from __future__ import annotations

import sys

import click


@click.group()
def main() -> None:
    """The Switchyard API service."""


@main.command()
def serve() -> None:
    """Serve HTTP with gunicorn (bind, workers and threads from API__* settings)."""
    from gunicorn.app.wsgiapp import run

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


if __name__ == "__main__":
    main()
