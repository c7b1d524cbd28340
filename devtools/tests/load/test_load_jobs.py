"""`switchyard load jobs` without servers: what it sends, which answers count as
accepted, the figures it derives from the jobs' timestamps, and the picture it draws."""

from __future__ import annotations

import struct
from collections import Counter
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from switchyard_devtools.load.cli import load
from switchyard_devtools.load.generator import LoadResult
from switchyard_devtools.load.jobs import JobTiming, accepted_ids, job_requests, summarise
from switchyard_devtools.load.plot import bin_width, plot_run, series


def test_requests_post_the_same_job_body() -> None:
    sent = list(job_requests("http://api", 3, "fail", {"times": 2}, max_attempts=4))
    assert len(sent) == 3
    for request in sent:
        assert (request.method, request.url) == ("POST", "http://api/jobs")
        assert orjson.loads(request.body or b"") == {
            "type": "fail",
            "payload": {"times": 2},
            "max_attempts": 4,
        }
    (plain,) = job_requests("http://api", 1, "echo", {})
    assert orjson.loads(plain.body or b"") == {"type": "echo", "payload": {}}


def test_accepted_ids_are_the_202s_and_200s_once_each() -> None:
    result = LoadResult(started=0.0)
    result.bodies = [
        (202, b'{"id": "a", "status": "queued"}'),
        (200, b'{"id": "a", "status": "queued"}'),  # an idempotent repeat of a
        (202, b'{"id": "b", "status": "scheduled"}'),
        (429, b'{"title": "overloaded"}'),
        (0, b""),
    ]
    assert accepted_ids(result) == ["a", "b"]


def test_summary_from_timestamps() -> None:
    timings = [
        # created, started, finished: enqueue->start 0.01 s, ->finish 0.02 s ...
        JobTiming(100.0 + i * 0.01, 100.01 + i * 0.01, 100.02 + i * 0.01, "succeeded")
        for i in range(99)
    ]
    timings.append(JobTiming(101.0, 102.0, 103.0, "dead"))  # one slow job
    summary = summarise(timings)
    assert summary.jobs == 100
    assert summary.statuses == Counter({"succeeded": 99, "dead": 1})
    # 100 jobs from the first enqueue (100.0) to the last finish (103.0).
    assert summary.throughput == pytest.approx(100 / 3.0)
    assert summary.completion == pytest.approx(100 / (103.0 - 100.01))
    assert summary.to_start_ms[0] == pytest.approx(10.0)
    assert summary.to_finish_ms[0] == pytest.approx(20.0)
    assert summary.to_finish_ms[2] == pytest.approx(20.0)  # p99 of 100 is the 99th
    assert summarise([*timings, JobTiming(104.0, None, None, "queued")]).to_finish_ms[2] == (
        pytest.approx(20.0)
    )


def test_summary_of_nothing_finished() -> None:
    summary = summarise([JobTiming(1.0, None, None, "queued")])
    assert summary.throughput == 0.0 and summary.statuses == Counter({"queued": 1})


def test_series_bins_by_second_and_widens_for_long_runs() -> None:
    assert bin_width(10) == 1.0
    assert bin_width(3000) == 10.0
    timings = [
        JobTiming(0.0, 0.1, 0.5, "succeeded"),
        JobTiming(0.5, 0.6, 1.2, "succeeded"),
        JobTiming(0.9, None, None, "queued"),
    ]
    starts, enqueued, done, latencies = series(timings)
    assert starts == [0.0, 1.0]
    assert enqueued == [3, 0]
    assert done == [1, 1]
    assert latencies[0] == [pytest.approx(500.0)]
    assert latencies[1] == [pytest.approx(700.0)]


def test_plot_writes_a_png(tmp_path: Path) -> None:
    timings = [
        JobTiming(i * 0.01, i * 0.01 + 0.002, i * 0.01 + 0.005, "succeeded") for i in range(500)
    ]
    target = tmp_path / "out" / "run.png"
    plot_run(timings, target, "500 echo jobs")
    data = target.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1000, 650)
    assert [p.name for p in target.parent.iterdir()] == ["run.png"], "no temporary file left"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--type", "sleep"], "seconds: Field required"),
        (["--payload", "[1]"], "a JSON object"),
        (["--payload", "{"], "not JSON"),
        (["--type", "fail", "--payload", '{"times": -1}'], "times: Input should be greater"),
        (["--type", "nope"], "'nope' is not one of"),
    ],
)
def test_bad_payloads_are_refused_before_anything_is_sent(args: list[str], message: str) -> None:
    result = CliRunner().invoke(load, ["jobs", "--api", "http://127.0.0.1:9", *args])
    assert result.exit_code == 2
    assert message in result.output
