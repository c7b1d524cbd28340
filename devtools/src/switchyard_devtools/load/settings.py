"""Settings for the load commands: ``$SWITCHYARD_CONFIG``, else a running dev stack's.

A dev convenience the runtime library does not have: without ``SWITCHYARD_CONFIG`` the
load commands use the ``var/dev/switchyard.toml`` a running ``make dev`` wrote.
"""

from __future__ import annotations

import os

import click

from switchyard.cli_settings import cli_settings
from switchyard.config import CONFIG_FILE_ENV, Settings
from switchyard_devtools.stack.stack import DEV_CONFIG_FILE


def dev_settings(command: str) -> Settings:
    """Settings from ``$SWITCHYARD_CONFIG``, else from the file a running `make dev` wrote."""
    if not os.environ.get(CONFIG_FILE_ENV) and DEV_CONFIG_FILE.is_file():
        click.echo(
            f"using the dev stack's {DEV_CONFIG_FILE} (set {CONFIG_FILE_ENV} to "
            "choose another file)",
            err=True,
        )
        os.environ[CONFIG_FILE_ENV] = str(DEV_CONFIG_FILE)
    return cli_settings(command)
