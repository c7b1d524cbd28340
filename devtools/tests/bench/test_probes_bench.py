"""The probes benchmark: registered with `make bench`, and a small run of it really probes
every target once per interval with each client and reports what it measured."""

from __future__ import annotations

import asyncio

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
        # 40 targets, 2 measured intervals: each probed twice, counted by due time (a
        # probe due at the very end may miss the tail on a loaded machine, never more).
        per_target = row["probes_per_target"]
        assert per_target.get("2", 0) >= 38, per_target
        assert row["probes"] >= 78 and row["cpu_seconds"] > 0
        # Refusing targets (1 in 20) fail; the rest answer.
        assert row["outcomes"].get("up", 0) >= 70
        # No target is ever probed twice within half an interval (2 s / 2).
        assert row["close_pairs"] == 0 and row["min_gap_seconds"] >= 1.0
    table = probes.markdown(rows, 2.0, 2)
    assert "| 40 | engine |" in table and "| 40 | least-code |" in table


def test_a_late_probe_counts_in_the_interval_it_was_due_in_and_close_probes_show() -> None:
    """A probe due before the window but started inside it (a loaded machine) is not a
    second probe of that interval; two starts of one target closer than half an interval
    are reported whatever the window."""

    async def scenario() -> probes._Window:
        now = asyncio.get_running_loop().time()
        window = probes._Window(now - 10.0, interval=10.0, intervals=3)  # [now, now + 30)
        assert not window.started(1, lag=2.0)  # due 2 s before the window
        assert window.started(2, lag=0.0)
        assert window.started(3, lag=0.0)
        assert window.started(3, lag=0.0)  # the same target again at once
        return window

    window = asyncio.run(scenario())
    assert window.per_target == {2: 1, 3: 2}
    assert window.started_in_window == 4  # the CPU of the window paid for all four
    assert window.close_pairs == 1 and window.min_gap < 1.0
    row = {"min_gap_seconds": window.min_gap, "close_pairs": window.close_pairs}
    assert "(1 under 5 s)" in probes._gap(row, 10.0)
