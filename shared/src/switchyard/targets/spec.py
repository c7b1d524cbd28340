"""A target as a user declares it, validated once for ``POST /targets`` and for a file
applied with ``switchyard targets apply``.

Guarantee: the API and the file accept exactly the same targets, and each field's JSON
Schema (in the OpenAPI document) states what its validation accepts. The one rule across
fields, ``timeout_seconds`` not above ``interval_seconds``, is beyond a JSON Schema and is
checked by :func:`timing_problem`, here and in ``PATCH /targets/{id}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from switchyard.targets.records import (
    DEFAULT_FAILURES_TO_DOWN,
    DEFAULT_INTERVAL_SECONDS,
    DEFAULT_SUCCESSES_TO_UP,
    DEFAULT_TIMEOUT_SECONDS,
    TargetSpec,
)

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_TARGETS_IN_FILE = 100_000

_CONTROL = r"\x00-\x1f\x7f-\x9f"
# Printable text that neither starts nor ends with a space (the API's `trimmed` fields).
NAME_PATTERN = rf"^[^{_CONTROL} ](?:[^{_CONTROL}]*[^{_CONTROL} ])?$"
_HEX4 = "[0-9A-Fa-f]{1,4}"
# RFC 4291 text forms without an embedded IPv4 part or a zone.
_IPV6 = "|".join(
    (
        rf"(?:{_HEX4}:){{7}}{_HEX4}",
        rf"(?:{_HEX4}:){{1,7}}:",
        rf"(?:{_HEX4}:){{1,6}}:{_HEX4}",
        rf"(?:{_HEX4}:){{1,5}}(?::{_HEX4}){{1,2}}",
        rf"(?:{_HEX4}:){{1,4}}(?::{_HEX4}){{1,3}}",
        rf"(?:{_HEX4}:){{1,3}}(?::{_HEX4}){{1,4}}",
        rf"(?:{_HEX4}:){{1,2}}(?::{_HEX4}){{1,5}}",
        rf"{_HEX4}:(?::{_HEX4}){{1,6}}",
        rf":(?:(?::{_HEX4}){{1,7}}|:)",
    )
)
_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[(?:{_IPV6})\])"
_PORT = "(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
# No userinfo ("@" cannot come before the path): GET /targets shows the URL to anyone.
URL_PATTERN = rf"^(?:https?://{_HOST}(?::{_PORT})?(?:[/?#][!-~]*)?|tcp://{_HOST}:{_PORT})$"
# pattern → what an error says instead of the regex (the API registers these too)
PATTERN_MESSAGES = {
    NAME_PATTERN: "must be printable (no control characters), without leading or trailing spaces",
    URL_PATTERN: "must be http://host[:port][/path], https://host[:port][/path] or "
    "tcp://host:port (port 1-65535, no path), without credentials, in printable ASCII "
    "(percent-encode the rest)",
}


def _integral(value: Any) -> Any:
    # JSON Schema's "integer" includes 2.0; a strict int would refuse it.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


_INTEGRAL = BeforeValidator(_integral)

Name = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        pattern=NAME_PATTERN,
        description="unique; 1-200 printable characters, no leading or trailing spaces",
    ),
]
Url = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2048,
        pattern=URL_PATTERN,
        description="http(s)://host[:port][/path] or tcp://host:port; at most 2048 characters",
    ),
]
IntervalSeconds = Annotated[
    int, Field(strict=True, ge=1, le=86400, description="seconds between probes"), _INTEGRAL
]
TimeoutSeconds = Annotated[
    float,
    Field(
        strict=True,
        gt=0,
        le=300,
        description="seconds a probe may take: above 0, at most 300, and not above "
        f"interval_seconds; default {DEFAULT_TIMEOUT_SECONDS:g}, or interval_seconds when "
        "that is shorter",
    ),
]
ExpectedStatus = Annotated[
    int,
    Field(strict=True, ge=100, le=599, description="the HTTP status that counts as up"),
    _INTEGRAL,
]
Threshold = Annotated[int, Field(strict=True, ge=1, le=100), _INTEGRAL]


def timing_problem(interval_seconds: int, timeout_seconds: float) -> str | None:
    """Why this interval and timeout cannot go together (None: they can)."""
    if timeout_seconds > interval_seconds:
        return f"must not be above interval_seconds ({interval_seconds})"
    return None


class TargetDeclaration(BaseModel):
    """``POST /targets``' body, and each entry of a targets file."""

    model_config = ConfigDict(extra="forbid", title="TargetDeclaration")

    name: Name
    url: Url
    interval_seconds: IntervalSeconds = DEFAULT_INTERVAL_SECONDS
    timeout_seconds: TimeoutSeconds = DEFAULT_TIMEOUT_SECONDS
    expected_status: ExpectedStatus | None = Field(
        default=None, description="the HTTP status that counts as up; null or absent: any 2xx"
    )
    failures_to_down: Threshold = Field(
        default=DEFAULT_FAILURES_TO_DOWN, description="consecutive failures that make it down"
    )
    successes_to_up: Threshold = Field(
        default=DEFAULT_SUCCESSES_TO_UP, description="consecutive successes that make it up"
    )

    @model_validator(mode="after")
    def _timing(self) -> TargetDeclaration:
        if "timeout_seconds" not in self.model_fields_set:
            # The default never contradicts a short interval: `interval_seconds: 1` alone works.
            self.timeout_seconds = min(DEFAULT_TIMEOUT_SECONDS, float(self.interval_seconds))
            return self
        problem = timing_problem(self.interval_seconds, self.timeout_seconds)
        if problem is not None:
            # A ValueError here would name no field; this names `timeout_seconds`.
            raise ValidationError.from_exception_data(
                self.__class__.__name__,
                [
                    {
                        "type": "value_error",
                        "loc": ("timeout_seconds",),
                        "input": self.timeout_seconds,
                        "ctx": {"error": ValueError(problem)},
                    }
                ],
            )
        return self

    def to_spec(self) -> TargetSpec:
        return TargetSpec(
            self.name,
            self.url,
            self.interval_seconds,
            self.timeout_seconds,
            self.expected_status,
            self.failures_to_down,
            self.successes_to_up,
        )


class InvalidFile(Exception):
    """A targets file that cannot be applied; ``errors`` are ``(field, message)`` pairs."""

    def __init__(self, path: Path, errors: list[tuple[str, str]]) -> None:
        lines = "\n".join(f"  {field}: {message}" for field, message in errors)
        super().__init__(f"{path}: nothing applied.\n{lines}")
        self.errors = errors


def field_path(location: tuple[int | str, ...]) -> str:
    """``("targets", 3, "url")`` → ``targets[3].url``."""
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(file)"


def _messages(exc: ValidationError, prefix: tuple[int | str, ...]) -> list[tuple[str, str]]:
    errors = []
    for error in exc.errors(include_url=False):
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        elif error["type"] == "missing":
            message = "field required"
        elif error["type"] == "string_pattern_mismatch":
            message = PATTERN_MESSAGES.get(error.get("ctx", {}).get("pattern", ""), message)
        errors.append((field_path((*prefix, *error["loc"])), message))
    return errors


def parse_targets(document: Any, path: Path) -> list[TargetSpec]:
    """A loaded file's ``targets:`` as specs, or :class:`InvalidFile` naming each field."""
    if not isinstance(document, dict) or set(document) != {"targets"}:
        raise InvalidFile(path, [("(file)", "must be a mapping with one key, `targets`")])
    entries = document["targets"]
    if not isinstance(entries, list):
        raise InvalidFile(path, [("targets", "must be a list (`targets: []` for none)")])
    if len(entries) > MAX_TARGETS_IN_FILE:
        raise InvalidFile(path, [("targets", f"at most {MAX_TARGETS_IN_FILE} entries")])
    errors: list[tuple[str, str]] = []
    specs: list[TargetSpec] = []
    first_at: dict[str, int] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            errors.append((f"targets[{index}]", "must be a mapping of fields"))
            continue
        try:
            spec = TargetDeclaration.model_validate(entry).to_spec()
        except ValidationError as exc:
            errors.extend(_messages(exc, ("targets", index)))
            continue
        if spec.name in first_at:
            errors.append(
                (f"targets[{index}].name", f"declared before, at targets[{first_at[spec.name]}]")
            )
        first_at.setdefault(spec.name, index)
        specs.append(spec)
    if errors:
        raise InvalidFile(path, errors)
    return specs


def load_file(path: Path) -> list[TargetSpec]:
    """Read a YAML targets file (``yaml.safe_load``: no tags run code)."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise InvalidFile(path, [("(file)", exc.strerror or str(exc))]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise InvalidFile(path, [("(file)", f"larger than {MAX_FILE_BYTES} bytes")])
    try:
        document = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise InvalidFile(path, [("(file)", f"not valid YAML: {exc}")]) from None
    return parse_targets(document, path)
