"""The ``switchyard`` operator command: migrate, inspect topics, list users, apply targets.

It works in every service image: it needs nothing beyond this library. Dev-only commands
(``switchyard dev``, ``bench``, ``load``) come from the ``switchyard-devtools`` workspace
member through the ``switchyard.commands`` entry-point group, and exist only where it is
installed (the workspace's own environment, never an image).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
import orjson
import sqlalchemy as sa

from switchyard.cli_settings import cli_settings
from switchyard.logging import configure_logging

if TYPE_CHECKING:
    from switchyard.targets.records import TargetRow


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


@db.command("wait")
@click.option(
    "--timeout",
    type=click.FloatRange(0, 86_400),
    default=300.0,
    show_default=True,
    help="seconds to wait before giving up (exit 1)",
)
def db_wait(timeout: float) -> None:
    """Wait until the database's schema is at the head revision this code ships.

    Exits 0 once it is (an init container before every service that uses the database),
    1 with the reason after ``--timeout`` seconds."""
    from switchyard.db.migrate import SchemaNotReady, wait_for_head

    settings = cli_settings()
    try:
        head = wait_for_head(settings, timeout, on_wait=lambda why: click.echo(f"waiting: {why}"))
    except SchemaNotReady as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"database schema at head ({head})")


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


@main.group()
def targets() -> None:
    """Health-checker targets; monitors as code with `apply`."""


@targets.command("apply")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="print the plan, change nothing")
def targets_apply(file: Path, dry_run: bool) -> None:
    """Make the targets exactly those of FILE (YAML: `targets:` list, matched by name):
    create, update, and DELETE every target the file does not name."""
    from switchyard.db.engine import create_engine
    from switchyard.targets import spec, store

    try:
        wanted = spec.load_file(file)
    except spec.InvalidFile as exc:
        raise click.ClickException(str(exc)) from None
    engine = create_engine(cli_settings(), pool_size=1)
    before = {row.name: row.spec() for row in _all_targets(engine)}
    try:
        plan = store.apply(engine, wanted, dry_run=dry_run)
    except store.TargetExists as exc:  # the API created one of the file's names meanwhile
        raise click.ClickException(f"{exc}, run it again") from None
    by_name = {target.name: target for target in wanted}
    for name in plan.create:
        click.echo(f"+ create {name}  {by_name[name].url}")
    for name in plan.update:
        old, new = before.get(name), by_name[name]
        changed = [
            f"{field}: {getattr(old, field)!r} -> {getattr(new, field)!r}"
            for field in (
                "url",
                "interval_seconds",
                "timeout_seconds",
                "expected_status",
                "failures_to_down",
                "successes_to_up",
            )
            if old is not None and getattr(old, field) != getattr(new, field)
        ]
        click.echo(f"~ update {name}  {', '.join(changed)}")
    for name in plan.delete:
        click.echo(f"- delete {name}")
    summary = (
        f"{len(plan.create)} to create, {len(plan.update)} to update, "
        f"{len(plan.delete)} to delete, {plan.unchanged} unchanged"
    )
    click.echo(f"{summary} (dry run: nothing changed)" if dry_run else f"applied: {summary}")


def _all_targets(engine: sa.Engine) -> list[TargetRow]:
    from switchyard.targets import store

    rows: list[TargetRow] = []
    while page := store.list_targets(engine, after_id=rows[-1].id if rows else None, limit=1000):
        rows.extend(page)
    return rows


@targets.command("list")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
def targets_list(as_json: bool) -> None:
    """Every target with its current status and last check, by id."""
    from switchyard.db.engine import create_engine

    rows = _all_targets(create_engine(cli_settings(), pool_size=1))
    if as_json:
        for row in rows:
            click.echo(orjson.dumps(dataclasses.asdict(row)).decode())
        return
    click.echo(f"{'id':>6}  {'name':<30} {'status':<8} {'every':>6}  {'last check':<20} url")
    for row in rows:
        checked = row.last_checked_at.strftime("%Y-%m-%d %H:%M:%S") if row.last_checked_at else "-"
        click.echo(
            f"{row.id:>6}  {row.name[:30]:<30} {row.status:<8} {row.interval_seconds:>5}s  "
            f"{checked:<20} {row.url}"
        )
    click.echo(f"({len(rows)} targets)", err=True)


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
