from __future__ import annotations

from pathlib import Path

import pytest

from switchyard.config import ConfigError, config_file_path, load_settings


def test_defaults_load_and_normalise_the_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("SWITCHYARD_CONFIG", "")
    settings = load_settings(database_url="postgres://u@h:5432/db")
    assert settings.sqlalchemy_url == "postgresql+psycopg2://u@h:5432/db"


def test_every_bad_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA__PARTITIONS", "many")
    monkeypatch.setenv("DATABASE_URL", "mysql://x")
    monkeypatch.setenv("API__PORT", "70000")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "KAFKA__PARTITIONS='many'" in message
    assert "DATABASE_URL='mysql://x'" in message
    assert "API__PORT='70000'" in message


def test_file_is_read_and_environment_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "switchyard.toml"
    config.write_text('redis_url = "redis://file:1/0"\n[api]\nworkers = 7\nport = 9999\n')
    monkeypatch.setenv("SWITCHYARD_CONFIG", str(config))
    monkeypatch.setenv("API__PORT", "8181")
    settings = load_settings()
    assert settings.redis_url == "redis://file:1/0"
    assert settings.api.workers == 7
    assert settings.api.port == 8181


def test_missing_config_file_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHYARD_CONFIG", "/nonexistent/switchyard.toml")
    with pytest.raises(ConfigError, match="no such file"):
        load_settings()


def test_no_file_is_read_unless_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A dev stack's var/dev/switchyard.toml in the working directory changes nothing."""
    dev = tmp_path / "var" / "dev"
    dev.mkdir(parents=True)
    (dev / "switchyard.toml").write_text('redis_url = "redis://dev-stack:1/0"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SWITCHYARD_CONFIG", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert config_file_path() is None
    assert load_settings().redis_url == "redis://127.0.0.1:6379/0"
    monkeypatch.setenv("SWITCHYARD_CONFIG", "var/dev/switchyard.toml")
    assert load_settings().redis_url == "redis://dev-stack:1/0"


STRONG_TOKEN = "k3Jx9vQ2mW7pL4tR8yZ1aB6cD0eF5gH2iJ"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("CHANGE-ME", "placeholder"),
        ("changeme", "placeholder"),
        ("Admin", "placeholder"),
        ("secret", "placeholder"),
        ("PASSWORD", "placeholder"),
        ("token", "placeholder"),
        ("x" * 40, "placeholder"),
        ("a-fine-looking-but-short-token", "shorter than 32 characters"),
    ],
)
def test_a_weak_admin_token_is_refused_with_how_to_make_one(
    monkeypatch: pytest.MonkeyPatch, token: str, reason: str
) -> None:
    monkeypatch.setenv("ADMIN_TOKEN", token)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "ADMIN_TOKEN" in message and reason in message
    assert "secrets.token_urlsafe(32)" in message
    assert "ADMIN_TOKEN: " in message
    assert f"ADMIN_TOKEN={token!r}" not in message, "the token itself is never printed"


def test_a_strong_admin_token_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_TOKEN", STRONG_TOKEN)
    token = load_settings().admin_token
    assert token is not None and token.get_secret_value() == STRONG_TOKEN


def test_prod_needs_an_admin_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ADMIN_TOKEN", raising=False)
    monkeypatch.setenv("ENVIRONMENT", "prod")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "\n  Value error, ADMIN_TOKEN is required when ENVIRONMENT=prod" in str(caught.value)
    monkeypatch.setenv("ADMIN_TOKEN", STRONG_TOKEN)
    assert load_settings().environment == "prod"
    monkeypatch.setenv("ENVIRONMENT", "dev")
    monkeypatch.delenv("ADMIN_TOKEN")
    assert load_settings().admin_token is None  # dev: the admin endpoints answer 401


def test_every_bad_value_is_named_with_the_token_among_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ADMIN_TOKEN", "CHANGE-ME")
    monkeypatch.setenv("API__PORT", "70000")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "ADMIN_TOKEN: " in str(caught.value) and "API__PORT='70000'" in str(caught.value)
