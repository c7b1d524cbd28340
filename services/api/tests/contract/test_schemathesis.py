"""The API keeps its own OpenAPI document: schemathesis drives every operation of a real
gunicorn (on real PostgreSQL, Redis and Kafka) with generated valid and invalid requests,
follows the document's links (create → read/patch/delete/claim), and runs every check.

Zero failures is the pass mark. ``CONTRACT_EXAMPLES`` (examples per operation) and
``CONTRACT_SEED`` explore further than the quick default.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from switchyard.config import Settings
from switchyard_devtools.bench.stack import api_server

pytestmark = pytest.mark.integration

EXAMPLES = os.environ.get("CONTRACT_EXAMPLES", "50")
SEED = os.environ.get("CONTRACT_SEED", "20261122")
SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.fixture(scope="module")
def api_url(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with api_server(settings, tmp_path_factory.mktemp("contract"), LOG_LEVEL="warning") as url:
        yield url


def test_every_operation_keeps_the_document(
    api_url: str, settings: Settings, tmp_path: Path
) -> None:
    token = settings.admin_token.get_secret_value() if settings.admin_token else ""
    command = [
        SCHEMATHESIS,
        "--config-file",
        str(CONFIG),
        "run",
        f"{api_url}/openapi.json",
        "--url",
        api_url,
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        # One worker: hypothesis parses lambdas' source with `ast`, and on CPython 3.11.7 two
        # threads doing that at once can fail ("AST constructor recursion depth mismatch").
        "--max-examples",
        EXAMPLES,
        "--workers",
        "1",
        "--seed",
        SEED,
        "--header",
        f"Authorization: Bearer {token}",
        "--request-timeout",
        "20",
        "--generation-database",
        "none",  # same seed, same run
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
    ]
    started = time.monotonic()
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1"},
    )
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    cases = re.search(r"Test cases:\s*(.*)", output)
    # The run's figures, for `pytest -s`.
    print(output, f"schemathesis: {elapsed:.0f}s, {cases.group(1) if cases else '?'}")
    assert result.returncode == 0, output[-20_000:]
