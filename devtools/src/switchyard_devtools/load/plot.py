"""``switchyard load jobs --plot``: a PNG of throughput and latency over a run.

Guarantee: the picture is drawn from the jobs' own timestamps (PostgreSQL's clock) and
written atomically (a temporary file renamed into place), so a reader never sees half a
PNG. matplotlib is a devtools dependency only, imported here alone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from switchyard_devtools.load.generator import percentile
from switchyard_devtools.load.jobs import JobTiming

# At most this many bins over the run, so long runs stay readable.
MAX_BINS = 300


def bin_width(span: float) -> float:
    """One second, or wider for runs of more than MAX_BINS seconds."""
    return max(1.0, span / MAX_BINS)


def series(
    timings: Sequence[JobTiming],
) -> tuple[list[float], list[int], list[int], dict[int, list[float]]]:
    """Bin starts (s since the first enqueue), jobs enqueued and finished per bin, and
    the enqueue→finish latencies (ms) of the jobs finished in each bin."""
    finished = [t for t in timings if t.finished is not None]
    if not timings:
        return [], [], [], {}
    origin = min(t.created for t in timings)
    end = max([t.finished for t in finished if t.finished is not None] or [origin])
    width = bin_width(end - origin)
    bins = int((end - origin) // width) + 1
    enqueued = [0] * bins
    done = [0] * bins
    latencies: dict[int, list[float]] = {}
    for timing in timings:
        enqueued[min(bins - 1, int((timing.created - origin) // width))] += 1
    for timing in finished:
        assert timing.finished is not None
        index = min(bins - 1, int((timing.finished - origin) // width))
        done[index] += 1
        latencies.setdefault(index, []).append((timing.finished - timing.created) * 1000)
    return [i * width for i in range(bins)], enqueued, done, latencies


def plot_run(timings: Sequence[JobTiming], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    starts, enqueued, done, latencies = series(timings)
    width = starts[1] - starts[0] if len(starts) > 1 else 1.0
    figure, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(10, 6.5))
    steps = {"drawstyle": "steps-post"}
    top.plot(starts, [n / width for n in enqueued], label="enqueued", color="tab:blue", **steps)
    top.plot(starts, [n / width for n in done], label="finished", color="tab:green", **steps)
    top.set_ylabel("jobs/s")
    top.set_ylim(bottom=0)
    top.legend(loc="upper right")
    top.grid(alpha=0.3)
    top.set_title(title, fontsize=10)
    keys = sorted(latencies)
    for q, colour in ((50, "tab:green"), (95, "tab:orange"), (99, "tab:red")):
        bottom.plot(
            [starts[k] for k in keys],
            [percentile(latencies[k], q) for k in keys],
            label=f"p{q}",
            color=colour,
        )
    bottom.set_ylabel("enqueue→finish ms\n(jobs finished in the second)")
    bottom.set_xlabel("seconds since the first enqueue")
    bottom.set_yscale("log")
    bottom.legend(loc="upper right")
    bottom.grid(alpha=0.3, which="both")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    figure.savefig(partial, dpi=100, format="png")
    plt.close(figure)
    partial.replace(path)
