"""Migrations before consumers: ``switchyard db wait``, and a missing table is transient.

Against the real PostgreSQL: a database of the test's own that starts empty.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import psycopg2
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from switchyard.cli import main
from switchyard.config import Settings
from switchyard.db.engine import create_engine, ensure_database
from switchyard.db.migrate import head_revisions, upgrade
from switchyard.errors import is_transient
from switchyard.events import CloudEvent
from switchyard.kafka.consumer import ConsumedEvent, Outcome, RetryInPlaceThenDeadLetter, decode
from switchyard_devtools.testing.fakes import FakeMessage

pytestmark = pytest.mark.integration


@pytest.fixture
def empty_database(settings: Settings) -> Iterator[Settings]:
    """A database of this test's own, created but never migrated."""
    base = settings.database_url.rsplit("/", 1)[0]
    own = settings.model_copy(update={"database_url": f"{base}/schema_wait_{uuid.uuid4().hex[:8]}"})
    ensure_database(own)
    yield own
    admin = sa.create_engine(
        settings.sqlalchemy_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
    )
    with admin.connect() as connection:
        name = own.database_url.rsplit("/", 1)[1]
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _wait(settings: Settings, timeout: float) -> tuple[int, str]:
    env = {"DATABASE_URL": settings.database_url, "SWITCHYARD_CONFIG": ""}
    result = CliRunner().invoke(main, ["db", "wait", "--timeout", str(timeout)], env=env)
    return result.exit_code, result.output


def test_db_wait_times_out_on_an_unmigrated_database_saying_why(empty_database: Settings) -> None:
    code, output = _wait(empty_database, 1)
    assert code == 1
    assert "schema not at head after 1s" in output
    assert "none (never migrated)" in output
    assert "switchyard db upgrade" in output


def test_db_wait_returns_once_the_migrations_ran(empty_database: Settings) -> None:
    migrate = threading.Timer(1.5, upgrade, args=(empty_database,))
    migrate.start()
    try:
        code, output = _wait(empty_database, 120)
    finally:
        migrate.join()
    assert code == 0, output
    assert "waiting: database at revision none (never migrated)" in output
    assert f"database schema at head ({', '.join(sorted(head_revisions()))})" in output


def test_db_wait_refuses_a_database_behind_head(empty_database: Settings) -> None:
    upgrade(empty_database, "0001")
    code, output = _wait(empty_database, 0)
    assert code == 1 and "database at revision 0001" in output


def test_db_wait_names_an_unreachable_database(settings: Settings) -> None:
    nowhere = settings.model_copy(update={"database_url": "postgresql://u@127.0.0.1:1/none"})
    code, output = _wait(nowhere, 0)
    assert code == 1 and "database unreachable" in output


def _event() -> ConsumedEvent:
    body = CloudEvent(type="t.v", source="/t", data={}).to_json()
    return decode(FakeMessage("t", 0, 0, body), True)  # type: ignore[arg-type]


class _Controls:
    """The runner controls a policy sees; records what it dead-letters."""

    group_id = "g"
    stopping = False

    def __init__(self) -> None:
        self.dead: list[BaseException] = []

    def pause_for(self, seconds: float) -> bool:
        time.sleep(seconds)
        return True

    def pause_until(self, done: Callable[[], bool]) -> None:
        while not done():
            time.sleep(0.01)

    def is_assigned(self, event: ConsumedEvent) -> bool:
        return True

    def dead_letter(
        self, event: ConsumedEvent, error: BaseException, topic: str | None = None
    ) -> None:
        self.dead.append(error)


def test_a_missing_table_is_retried_until_it_exists_never_dead_lettered(
    empty_database: Settings,
) -> None:
    """A consumer started before the migration Job: its records wait for the table."""
    engine = create_engine(empty_database)
    table = "arrives_late"
    calls = 0

    def handler(events: list[ConsumedEvent]) -> None:
        nonlocal calls
        calls += 1
        if calls == 5:  # the migration Job finishes meanwhile
            with engine.begin() as connection:
                connection.execute(sa.text(f"CREATE TABLE {table} (id int)"))
        with engine.begin() as connection:
            connection.execute(sa.text(f"INSERT INTO {table} VALUES (1)"))

    controls = _Controls()
    policy = RetryInPlaceThenDeadLetter(
        max_attempts=3, backoff_base_seconds=0.001, backoff_cap_seconds=0.01
    )
    try:
        outcome = policy.handle([_event(), _event()], handler, controls)
        assert outcome is Outcome.COMMIT
        assert controls.dead == [], "a missing table is never a dead letter"
        assert calls == 5, "more attempts than max_attempts: retried as an outage"
        with engine.connect() as connection:
            assert connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar() == 1
    finally:
        engine.dispose()


def test_undefined_table_is_transient_wrapped_or_raw(empty_database: Settings) -> None:
    engine = create_engine(empty_database)
    try:
        with pytest.raises(sa.exc.ProgrammingError) as wrapped, engine.connect() as connection:
            connection.execute(sa.text("SELECT * FROM no_such_table"))
        assert is_transient(wrapped.value)
        connection = engine.raw_connection()  # what the batcher's COPY sink gets
        try:
            with pytest.raises(psycopg2.errors.UndefinedTable) as raw:
                connection.cursor().execute("SELECT * FROM no_such_table")
        finally:
            connection.close()
        assert is_transient(raw.value)
        with pytest.raises(sa.exc.ProgrammingError) as other, engine.connect() as connection:
            connection.execute(sa.text("SELEC 1"))
        assert not is_transient(other.value), "a syntax error stays a bug, not an outage"
    finally:
        engine.dispose()
