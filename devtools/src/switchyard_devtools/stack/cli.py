"""``switchyard dev``: the whole stack in one terminal, like foreman with a restart policy."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import click

from switchyard.config import CONFIG_FILE_ENV, load_settings
from switchyard.logging import configure_logging
from switchyard_devtools.stack.banner import Banner
from switchyard_devtools.stack.output import Console
from switchyard_devtools.stack.services import (
    API,
    API_GRPC,
    NAMES,
    RELAY,
    ServiceSpec,
    build_specs,
    dev_defaults,
)
from switchyard_devtools.stack.stack import (
    CONFIG_NAME,
    DEV_VAR_DIR,
    AlreadyRunning,
    Backing,
    admin_token,
    exclusive,
    provide_backing,
    write_config,
)
from switchyard_devtools.stack.supervisor import DRAIN_TIMEOUT, Signals, Supervisor


@click.command()
@click.option(
    "--no-services", is_flag=True, help="Only infrastructure and migrations; run services by hand."
)
@click.option(
    "--no-api", is_flag=True, help="Without the API, its outbox relay and its gRPC server."
)
@click.option(
    "--only",
    multiple=True,
    type=click.Choice(NAMES),
    metavar="SERVICE",
    help=f"Run only this service (repeatable): {', '.join(NAMES)}.",
)
@click.option(
    "--api-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="API port (default 8080, or a free one when 8080 is taken).",
)
@click.option(
    "--var-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEV_VAR_DIR,
    envvar="SWITCHYARD_VAR_DIR",
    show_default=True,
    help="Where embedded servers keep their data (kept between runs).",
)
@click.option(
    "--drain-timeout",
    type=click.FloatRange(0, 3600),
    default=DRAIN_TIMEOUT,
    envvar="SWITCHYARD_DEV_DRAIN_TIMEOUT",
    show_default=True,
    help="On stop, seconds to let consumers drain the embedded in-memory broker "
    "before it goes (0: do not wait).",
)
def dev(
    no_services: bool,
    no_api: bool,
    only: tuple[str, ...],
    api_port: int | None,
    var_dir: Path,
    drain_timeout: float,
) -> None:
    """Start the whole dev stack (embedded servers unless URLs are given).

    DATABASE_URL, REDIS_URL and KAFKA_BOOTSTRAP_SERVERS, when set, name servers to use
    instead of embedded ones. Ctrl-C or SIGTERM (to this process or its whole process
    group) stops everything in order, first letting consumers drain the embedded
    broker; a second Ctrl-C, a second or more later, kills the services instead.
    """
    started = time.monotonic()
    selected = [] if no_services else list(only or NAMES)
    if no_api:
        selected = [name for name in selected if name not in (API, RELAY, API_GRPC)]
    console = Console(selected)
    # Until the supervisor owns the signals, a stop signal aborts startup as Ctrl-C does.
    interrupt = _StartupInterrupt()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)
    # Only library warnings (alembic, librdkafka) reach it: the story is told by `say`.
    configure_logging("dev", "warning", "console")
    try:
        with exclusive(var_dir):
            status = _run(console, selected, api_port, var_dir, started, drain_timeout)
    except AlreadyRunning as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(status)


def _run(
    console: Console,
    selected: Sequence[str],
    api_port: int | None,
    var_dir: Path,
    started: float,
    drain_timeout: float,
) -> int:
    config_path = var_dir / CONFIG_NAME
    # Left behind by a stack that was killed: it would point commands at dead servers.
    config_path.unlink(missing_ok=True)
    signals = Signals()
    backing: Backing | None = None
    supervisor: Supervisor | None = None
    try:
        try:
            backing = provide_backing(var_dir, console.say)
            token = admin_token(var_dir)
            specs = _prepare(
                console, backing, token.value, config_path, selected, api_port, var_dir
            )
        except KeyboardInterrupt:
            console.say("interrupted while starting")
            return 0
        except Exception as exc:  # whatever failed, the message is what the user needs
            console.warn(f"could not start the dev stack: {type(exc).__name__}: {exc}")
            return 1
        banner = Banner(console, specs, backing, token, config_path, started)
        supervisor = Supervisor(
            specs,
            console,
            signals.install(),
            backing.embedded,
            on_ready=banner.show,
            drain_timeout=drain_timeout,
        )
        return supervisor.run()
    finally:
        # A signal during the cleanup below must not abort it halfway.
        signals.install()
        if config_path.exists():
            config_path.unlink()
            console.say(f"removed {config_path}")
        if backing is not None:
            backing.stop(console.say)
        console.say("all stopped")
        if supervisor is not None and supervisor.failure:
            # Repeated last, where it is seen, after the whole shutdown scrolled past.
            console.warn(f"the dev stack stopped because {supervisor.failure}")


def _prepare(
    console: Console,
    backing: Backing,
    token: str,
    config_path: Path,
    selected: Sequence[str],
    api_port: int | None,
    var_dir: Path,
) -> list[ServiceSpec]:
    from switchyard.db.migrate import upgrade
    from switchyard.kafka.topics import all_topic_names, ensure_topics

    settings = load_settings(
        service_name="dev",
        database_url=backing.urls["postgres"],
        redis_url=backing.urls["redis"],
        kafka_bootstrap_servers=backing.urls["kafka"],
        admin_token=token,
    )
    console.say("applying database migrations")
    upgrade(settings)
    ensure_topics(settings)
    console.say(f"{len(all_topic_names(settings))} Kafka topics in place")
    write_config(
        config_path,
        {
            "database_url": settings.database_url,
            "redis_url": settings.redis_url,
            "kafka_bootstrap_servers": settings.kafka_bootstrap_servers,
            "admin_token": token,
            "redis_key_prefix": settings.redis_key_prefix,
            "kafka": {"topic_prefix": settings.kafka.topic_prefix},
        },
    )
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "ADMIN_TOKEN": token,
        # Named explicitly: no process reads a config file it is not told about.
        CONFIG_FILE_ENV: str(config_path.resolve()),
        # Children write into a pipe; unbuffered, their lines show up when written.
        "PYTHONUNBUFFERED": "1",
    }
    # One readable line per event beats JSON in a terminal; LOG_FORMAT=json still wins.
    env.setdefault("LOG_FORMAT", "console")
    # MEDIA_ROOT under the var dir unless given; FETCH__ALLOW & co. come with os.environ.
    for name, value in dev_defaults(var_dir).items():
        env.setdefault(name, value)
    Path(env["MEDIA_ROOT"]).mkdir(parents=True, exist_ok=True)
    specs = build_specs(selected, env, api_port, settings.kafka.topic_prefix)
    for spec in specs:
        console.add(spec.name)
    return specs


class _StartupInterrupt:
    """The first stop signal raises KeyboardInterrupt; the copies that arrive with it (a
    group signal forwarded again by uv and make) are ignored, so they cannot abort the
    cleanup the first one started."""

    def __init__(self) -> None:
        self.raised = False

    def __call__(self, signum: int, _: FrameType | None) -> None:
        if not self.raised:
            self.raised = True
            raise KeyboardInterrupt
