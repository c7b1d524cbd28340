from __future__ import annotations

from openapi_spec_validator import validate

from switchyard_api.http.contract import openapi_path
from switchyard_api.openapi import build_openapi


def test_document_is_valid_openapi_3_1() -> None:
    document = build_openapi()
    assert document["openapi"].startswith("3.1")
    validate(document)  # raises on any violation


def test_every_route_is_documented() -> None:
    from switchyard.config import load_settings
    from switchyard_api.app import create_app

    app = create_app(load_settings(database_url="postgresql://nobody@127.0.0.1:1/none"))
    documented = build_openapi()["paths"]
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path, _ = openapi_path(rule.rule)
        assert path in documented, f"{path} is served but not in /openapi.json"
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in documented[path], f"{method} {path} undocumented"
