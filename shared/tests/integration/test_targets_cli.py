"""``switchyard targets apply|list`` as a real process against real PostgreSQL: the plan
printed by name, a dry run and a bad file change nothing, an apply makes the targets
exactly the file's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from switchyard.config import Settings
from switchyard.targets import store
from switchyard.targets.records import TargetSpec
from switchyard.targets.spec import load_file
from switchyard_devtools.testing.infra import settings_env

pytestmark = pytest.mark.integration

SWITCHYARD = str(Path(sys.executable).with_name("switchyard"))
EXAMPLE = Path(__file__).parents[3] / "deploy" / "targets.example.yaml"


def _run(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SWITCHYARD, "targets", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=settings_env(settings),
    )


def _snapshot(engine: sa.Engine) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(sa.text("SELECT * FROM targets ORDER BY id")).all())


def _specs(engine: sa.Engine) -> dict[str, TargetSpec]:
    rows = store.list_targets(engine, after_id=None, limit=1000)
    return {row.name: row.spec() for row in rows}


def test_apply_plans_then_makes_the_targets_match(
    settings: Settings, engine: sa.Engine, tmp_path: Path
) -> None:
    store.apply(engine, [], dry_run=False)
    stray = store.create_target(engine, TargetSpec("made-by-hand", "tcp://127.0.0.1:9"))
    before = _snapshot(engine)

    dry = _run(settings, "apply", str(EXAMPLE), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "+ create api  http://api:8080/healthz" in dry.stdout
    assert "- delete made-by-hand" in dry.stdout
    assert "5 to create, 0 to update, 1 to delete, 0 unchanged (dry run" in dry.stdout
    assert _snapshot(engine) == before

    applied = _run(settings, "apply", str(EXAMPLE))
    assert applied.returncode == 0, applied.stderr
    assert "applied: 5 to create" in applied.stdout
    wanted = {spec.name: spec for spec in load_file(EXAMPLE)}
    assert _specs(engine) == wanted
    assert store.get_target(engine, stray.id) is None

    again = _run(settings, "apply", str(EXAMPLE))
    assert "applied: 0 to create, 0 to update, 0 to delete, 5 unchanged" in again.stdout

    changed = tmp_path / "targets.yaml"
    changed.write_text(
        EXAMPLE.read_text()
        .replace("interval_seconds: 15\n  - name: redis", "interval_seconds: 20\n  - name: redis")
        .replace("  - name: kafka\n", "  - name: web\n    url: https://example.com/\n  - name: k\n")
    )
    plan = _run(settings, "apply", str(changed), "--dry-run")
    assert "~ update postgres  interval_seconds: 15 -> 20" in plan.stdout
    assert "+ create web  https://example.com/" in plan.stdout
    assert "+ create k  tcp://kafka:9092" in plan.stdout
    assert "- delete kafka" in plan.stdout
    assert _specs(engine) == wanted

    assert _run(settings, "apply", str(changed)).returncode == 0
    assert _specs(engine) == {spec.name: spec for spec in load_file(changed)}

    listed = _run(settings, "list")
    assert listed.returncode == 0
    by_id = [row.name for row in store.list_targets(engine, after_id=None, limit=100)]
    assert [line.split()[1] for line in listed.stdout.splitlines()[1:]] == by_id
    assert "(6 targets)" in listed.stderr


BAD_ENTRIES = {
    "    url: tcp://db.internal": "targets[3].url: must be http://host",
    "    url: tcp://db:5432/x": "targets[4].url: must be http://host",
    "    url: tcp://db:5432\n    interval_seconds: 10\n    timeout_seconds: 20": (
        "targets[5].timeout_seconds: must not be above interval_seconds (10)"
    ),
    "    url: tcp://db:5432\n    colour: red": "targets[6].colour: unknown field",
    "    url: tcp://db:5432\n    interval_seconds: '30'": "targets[7].interval_seconds:",
}


def test_a_bad_file_names_each_field_and_changes_nothing(
    settings: Settings, engine: sa.Engine, tmp_path: Path
) -> None:
    store.apply(engine, [TargetSpec("kept", "tcp://127.0.0.1:9")], dry_run=False)
    before = _snapshot(engine)
    good = [f"  - name: ok-{index}\n    url: http://127.0.0.1:9/" for index in range(3)]
    bad = [f"  - name: bad-{index}\n{entry}" for index, entry in enumerate(BAD_ENTRIES)]
    path = tmp_path / "bad.yaml"
    path.write_text("targets:\n" + "\n".join([*good, *bad]) + "\n")
    for args in (("apply", str(path)), ("apply", str(path), "--dry-run")):
        result = _run(settings, *args)
        assert result.returncode == 1
        assert "nothing applied" in result.stderr
        for says in BAD_ENTRIES.values():
            assert says in result.stderr
        assert _snapshot(engine) == before
