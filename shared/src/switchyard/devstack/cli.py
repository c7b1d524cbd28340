"""``switchyard dev``: placeholder until the supervisor lands."""

from __future__ import annotations

import click


@click.command()
def dev() -> None:
    """Start the whole dev stack (embedded servers unless URLs are given)."""
    raise click.ClickException("not implemented yet")
