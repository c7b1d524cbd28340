"""Fixtures for API tests: the Flask app on real servers, and a real gunicorn process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from switchyard.config import Settings


@pytest.fixture(scope="session")
def app(settings: Settings) -> Iterator[Flask]:
    from switchyard_api.app import create_app

    application = create_app(settings)
    yield application
    application.extensions["switchyard"].close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


ADMIN = {"Authorization": "Bearer test-admin-token-of-the-suite-only-0001"}
