"""The probes benchmark: registered with `make bench`, and a small run of it really probes
every target once per interval with each client and reports what it measured."""

from __future__ import annotations

import pytest

from switchyard_devtools.bench import BENCHMARKS, probes


def test_registered() -> None:
    assert "probes" in BENCHMARKS and probes.NAME == "probes"


def test_a_small_run_probes_every_target_each_interval_with_each_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BENCH_PROBES_CLIENTS", "engine,least-code")
    rows = probes.measure([40], interval=2.0, intervals=2)  # slow targets answer in 1 s
    assert [row["client"] for row in rows] == ["engine", "least-code"]
    for row in rows:
        # 40 targets, 2 measured intervals: each probed twice (the window's edges may
        # shift one probe on a loaded machine, never more).
        per_target = row["probes_per_target"]
        assert per_target.get("2", 0) >= 38, per_target
        assert row["probes"] >= 78 and row["cpu_seconds"] > 0
        # Refusing targets (1 in 20) fail; the rest answer.
        assert row["outcomes"].get("up", 0) >= 70
    table = probes.markdown(rows, 2.0, 2)
    assert "| 40 | engine |" in table and "| 40 | least-code |" in table
