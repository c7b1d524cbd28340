"""Targets files: the same rules as ``POST /targets``, every bad field named by its place
in the file, and nothing returned unless the whole file is good."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchyard.targets.records import TargetSpec
from switchyard.targets.spec import MAX_FILE_BYTES, InvalidFile, load_file


def _load(tmp_path: Path, text: str) -> list[TargetSpec]:
    path = tmp_path / "targets.yaml"
    path.write_text(text)
    return load_file(path)


def _errors(tmp_path: Path, text: str) -> list[tuple[str, str]]:
    with pytest.raises(InvalidFile) as caught:
        _load(tmp_path, text)
    assert "nothing applied" in str(caught.value)
    return caught.value.errors


def test_defaults_match_the_api(tmp_path: Path) -> None:
    specs = _load(
        tmp_path,
        "targets:\n"
        "  - {name: a, url: 'http://127.0.0.1:9/'}\n"
        "  - {name: b, url: 'tcp://h:1', interval_seconds: 2, expected_status: 204}\n"
        "  - {name: c, url: 'https://h/', interval_seconds: 60.0, timeout_seconds: 60}\n",
    )
    assert specs == [
        TargetSpec("a", "http://127.0.0.1:9/", 30, 5.0, None, 3, 2),
        TargetSpec("b", "tcp://h:1", 2, 2.0, 204, 3, 2),
        TargetSpec("c", "https://h/", 60, 60.0, None, 3, 2),
    ]


def test_an_empty_list_is_no_targets(tmp_path: Path) -> None:
    assert _load(tmp_path, "targets: []\n") == []


def test_every_bad_field_is_named_by_its_place(tmp_path: Path) -> None:
    errors = _errors(
        tmp_path,
        "targets:\n"
        "  - {name: a, url: 'tcp://h:1'}\n"
        "  - {name: b, url: 'tcp://h'}\n"  # no port
        "  - {name: c, url: 'http://h/', interval_seconds: 5, timeout_seconds: 6}\n"
        "  - {name: a, url: 'tcp://h:2'}\n"  # the name again
        "  - {name: yes, url: 'tcp://h:3'}\n"  # YAML reads `yes` as true
        "  - {url: 'http://h/', failures_to_down: 0, extra: 1}\n"
        "  - just text\n",
    )
    assert [field for field, _ in errors] == [
        "targets[1].url",
        "targets[2].timeout_seconds",
        "targets[3].name",
        "targets[4].name",
        "targets[5].name",
        "targets[5].failures_to_down",
        "targets[5].extra",
        "targets[6]",
    ]
    assert dict(errors)["targets[3].name"] == "declared before, at targets[0]"
    assert dict(errors)["targets[2].timeout_seconds"] == "must not be above interval_seconds (5)"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("", "(file)"),
        ("targets:\n", "targets"),
        ("targets: {a: 1}\n", "targets"),
        ("- name: a\n", "(file)"),
        ("targets: []\nextra: 1\n", "(file)"),
        ("targets: [\n", "(file)"),
        ("targets: !!python/object/apply:os.system ['true']\n", "(file)"),
    ],
)
def test_a_file_of_the_wrong_shape_is_refused(tmp_path: Path, text: str, field: str) -> None:
    assert [name for name, _ in _errors(tmp_path, text)] == [field]


def test_files_have_a_size_limit(tmp_path: Path) -> None:
    text = "targets: []\n" + "#" * MAX_FILE_BYTES
    assert _errors(tmp_path, text) == [("(file)", f"larger than {MAX_FILE_BYTES} bytes")]


def test_a_missing_file_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(InvalidFile) as caught:
        load_file(tmp_path / "absent.yaml")
    assert caught.value.errors[0][0] == "(file)"
