"""The ``switchyard`` operator command: migrate, inspect topics, list users.

It works in every service image: it needs nothing beyond this library. Dev-only commands
(``switchyard dev``, ``bench``, ``load``) come from the ``switchyard-devtools`` workspace
member through the ``switchyard.commands`` entry-point group, and exist only where it is
installed (the workspace's own environment, never an image).
"""

from __future__ import annotations

import sys

import click
import orjson
import sqlalchemy as sa

from switchyard.cli_settings import cli_settings
from switchyard.logging import configure_logging


@click.group()
def main() -> None:
    """Switchyard: operate and inspect the platform."""


@main.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Create the database if needed and apply migrations."""
    from switchyard.db.migrate import upgrade

    settings = cli_settings()
    configure_logging("cli", settings.log_level, "console")
    upgrade(settings, revision)
    click.echo(f"database migrated to {revision}")


@main.group()
def users() -> None:
    """Users, straight from the database."""


@users.command("list")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
def users_list(limit: int, as_json: bool) -> None:
    """Fetch and display users from PostgreSQL (no cache, no API)."""
    from switchyard.db.engine import create_engine
    from switchyard.db.models import User

    engine = create_engine(cli_settings(), pool_size=1)
    with engine.connect() as connection:
        rows = (
            connection.execute(sa.select(User.__table__).order_by(User.id).limit(limit))
            .mappings()
            .all()
        )
    if as_json:
        for row in rows:
            click.echo(orjson.dumps(dict(row), option=orjson.OPT_NAIVE_UTC).decode())
        return
    click.echo(f"{'id':>6}  {'name':<30} {'mobile':<16} {'latitude':>10} {'longitude':>11}")
    for row in rows:
        click.echo(
            f"{row['id']:>6}  {row['name'][:30]:<30} {row['mobile']:<16} "
            f"{row['latitude']:>10.5f} {row['longitude']:>11.5f}"
        )
    click.echo(f"({len(rows)} users)", err=True)


@main.group()
def topics() -> None:
    """Kafka topics."""


@topics.command("list")
def topics_list() -> None:
    """The topic catalogue, with the names used on this cluster."""
    from switchyard.kafka.topics import CATALOGUE, dlq_name, topic_name

    settings = cli_settings()
    for topic in CATALOGUE:
        name = topic_name(settings, topic)
        dlq = dlq_name(name) if topic.has_dlq else "-"
        click.echo(f"{name:<24} key={topic.key:<14} dlq={dlq:<28} {', '.join(topic.event_types)}")


@topics.command("tail")
@click.argument("topic")
@click.option("--follow/--no-follow", "-f", default=False, help="keep waiting for new events")
@click.option("--from-beginning/--from-end", default=True, show_default=True)
def topics_tail(topic: str, follow: bool, from_beginning: bool) -> None:
    """Print the events of TOPIC (prefix added), one JSON line each, with key and headers."""
    from switchyard.kafka.tail import iter_records
    from switchyard.kafka.topics import topic_name

    settings = cli_settings()
    name = topic_name(settings, topic)
    try:
        for record in iter_records(settings, name, from_beginning=from_beginning, follow=follow):
            line = {
                "partition": record.partition,
                "offset": record.offset,
                "key": record.key.decode(errors="replace") if record.key else None,
                "headers": record.headers,
                "event": record.event.to_dict(),
            }
            click.echo(orjson.dumps(line).decode())
    except KeyboardInterrupt:
        sys.exit(0)


PLUGIN_GROUP = "switchyard.commands"


def _register_plugins() -> None:
    """Commands other installed distributions add (``switchyard-devtools``: dev, bench,
    load). Service images install none, so there ``switchyard`` has the operator
    commands above only."""
    from importlib.metadata import entry_points

    for entry in entry_points(group=PLUGIN_GROUP):
        command = entry.load()
        if isinstance(command, click.Command):
            main.add_command(command, entry.name)


_register_plugins()
