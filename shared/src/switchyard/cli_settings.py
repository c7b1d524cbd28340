"""Settings for CLI commands: a bad value becomes a clean usage error, not a traceback."""

from __future__ import annotations

import click

from switchyard.config import ConfigError, Settings, load_settings


def cli_settings(command: str = "cli") -> Settings:
    try:
        return load_settings(service_name=command)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
