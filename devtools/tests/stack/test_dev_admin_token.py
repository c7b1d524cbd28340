"""The dev stack's admin token: generated strong and kept, or a given one checked first."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchyard.config import load_settings, weak_admin_token
from switchyard_devtools.stack.stack import admin_token


def test_a_generated_token_passes_the_services_check_and_is_kept(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ADMIN_TOKEN", raising=False)
    first = admin_token(tmp_path)
    assert weak_admin_token(first.value) is None
    assert load_settings(admin_token=first.value).admin_token is not None
    assert admin_token(tmp_path).value == first.value


def test_a_weak_token_from_the_environment_stops_the_stack_before_it_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ADMIN_TOKEN", "CHANGE-ME")
    with pytest.raises(ValueError, match="placeholder; make one with: python -c"):
        admin_token(tmp_path)
