"""``switchyard bench``: run the benchmarks and write their figures to one Markdown file.

Guarantee: the output file is written only once every selected benchmark has finished.
"""

from __future__ import annotations

from pathlib import Path

import click

from switchyard.logging import configure_logging


@click.command()
@click.argument("names", nargs=-1)
@click.option("--output", default="bench/results.md", show_default=True, type=click.Path())
@click.option("--workdir", default="var/bench", show_default=True, type=click.Path())
def bench(names: tuple[str, ...], output: str, workdir: str) -> None:
    """Run the benchmarks (all, or NAMES) and write the figures to OUTPUT."""
    from switchyard_devtools.bench import run_benchmarks

    configure_logging("bench", "warning", "console")
    click.echo(run_benchmarks(list(names), Path(output), Path(workdir)))
