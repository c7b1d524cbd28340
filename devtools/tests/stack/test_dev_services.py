"""What ``switchyard dev`` gives each service, and what its banner says: no servers needed."""

from __future__ import annotations

import io
import time
from pathlib import Path

from switchyard_devtools.stack.banner import Banner
from switchyard_devtools.stack.output import Console
from switchyard_devtools.stack.services import NAMES, build_specs, dev_defaults
from switchyard_devtools.stack.stack import AdminToken, Backing


def test_media_root_defaults_under_the_var_dir() -> None:
    assert dev_defaults(Path("var/dev")) == {"MEDIA_ROOT": "var/dev/media"}
    assert dev_defaults(Path("/tmp/x")) == {"MEDIA_ROOT": "/tmp/x/media"}


def test_image_worker_gets_the_environment_and_declares_its_group() -> None:
    env = {"MEDIA_ROOT": "var/dev/media", "FETCH__ALLOW": "127.0.0.1/32"}
    specs = build_specs(NAMES, env, topic_prefix="")
    by_name = {spec.name: spec for spec in specs}
    worker = by_name["image-worker"]
    assert worker.env["FETCH__ALLOW"] == "127.0.0.1/32"
    assert worker.env["MEDIA_ROOT"] == by_name["api"].env["MEDIA_ROOT"] == "var/dev/media"
    assert worker.consumes == (("image-worker", "products"),)
    # Declared like the batcher's: drained before the in-memory broker stops.
    assert ("batcher-logs", "logs") in by_name["batcher"].consumes

    prefixed = {s.name: s for s in build_specs(NAMES, env, topic_prefix="t1.")}
    assert prefixed["image-worker"].consumes == (("t1.image-worker", "t1.products"),)


def test_health_checker_stops_before_the_relay_and_the_drain() -> None:
    """It publishes without pause: stopped with the API, before the relay (which then
    publishes its last target.down / target.up) and before the broker is drained."""
    by_name = {spec.name: spec for spec in build_specs(NAMES, {}, topic_prefix="")}
    checker = by_name["health-checker"]
    assert checker.argv[0].endswith("switchyard-health-checker")
    assert checker.stop_rank < by_name["outbox-relay"].stop_rank
    assert checker.stop_rank < by_name["batcher"].stop_rank, "the batcher stores its last checks"
    assert checker.consumes == ()
    assert checker.env["ADMIN_PORT"] == str(checker.port)


def _banner(env: dict[str, str]) -> str:
    out = io.StringIO()
    specs = build_specs(["image-worker", "batcher"], env)
    Banner(
        Console([s.name for s in specs], out, colour=False),
        specs,
        Backing(),
        AdminToken("t", "test"),
        Path("var/dev/switchyard.toml"),
        time.monotonic(),
    ).show()
    return out.getvalue()


def test_banner_says_where_media_goes_and_what_may_be_fetched() -> None:
    text = _banner({"MEDIA_ROOT": "var/dev/media"})
    assert "media           var/dev/media" in text
    assert "FETCH__ALLOW    none: public addresses only" in text

    text = _banner({"MEDIA_ROOT": "/srv/m", "FETCH__ALLOW": "127.0.0.1/32"})
    assert "media           /srv/m" in text
    assert "FETCH__ALLOW    127.0.0.1/32" in text


def test_banner_without_the_image_worker_says_nothing_of_media() -> None:
    out = io.StringIO()
    specs = build_specs(["batcher"], {"MEDIA_ROOT": "var/dev/media"})
    Banner(
        Console(["batcher"], out, colour=False),
        specs,
        Backing(),
        AdminToken("t", "test"),
        Path("var/dev/switchyard.toml"),
        time.monotonic(),
    ).show()
    assert "media " not in out.getvalue()


def test_job_worker_declares_its_groups_on_jobs_and_every_retry_tier() -> None:
    """Drained before the in-memory broker stops: `jobs` by group job-worker, each retry
    tier by its own group, prefixed like every other group and topic."""
    specs = {s.name: s for s in build_specs(NAMES, {}, topic_prefix="t1.")}
    assert specs["job-worker"].consumes == (
        ("t1.job-worker", "t1.jobs"),
        ("t1.job-worker-retry-5s", "t1.jobs.retry-5s"),
        ("t1.job-worker-retry-1m", "t1.jobs.retry-1m"),
        ("t1.job-worker-retry-10m", "t1.jobs.retry-10m"),
    )
    assert specs["job-worker"].stop_rank > specs["api"].stop_rank
