"""schemas/openapi.yaml and the route table describe the same API."""

from __future__ import annotations

from pathlib import Path

import yaml

from hub.app import STATUS_OF, create_app
from hub.ingest.validation import SchemaSet
from hub.settings import Settings

OPENAPI = Path(__file__).resolve().parents[2] / "schemas" / "openapi.yaml"
METHODS = {"get", "post", "put", "patch", "delete"}


def served_routes() -> set[tuple[str, str]]:
    app = create_app(Settings(redis_url="redis://unused"), SchemaSet())
    return {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.method.lower() in METHODS
    }


def described_routes() -> set[tuple[str, str]]:
    spec = yaml.safe_load(OPENAPI.read_text())
    return {
        (method, path)
        for path, item in spec["paths"].items()
        for method in item
        if method in METHODS
    }


def test_every_route_is_described_and_every_description_is_served() -> None:
    """A route missing from openapi.yaml, or a described path the hub does not serve, fails."""
    assert served_routes() == described_routes()


def test_described_statuses_include_the_error_statuses() -> None:
    """Authenticated operations list 401; body-taking ones list 400, 413, 415 and 422."""
    spec = yaml.safe_load(OPENAPI.read_text())
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            statuses = {str(s) for s in op["responses"]}
            if op.get("security", spec.get("security")):
                assert "401" in statuses, (method, path)
            if "requestBody" in op:
                assert {"400", "413", "415", "422"} <= statuses, (method, path)


def test_every_error_code_is_documented() -> None:
    """The Error body's `error` enum in openapi.yaml lists every code the hub answers with,
    method_not_allowed (405) among them, and no other."""
    spec = yaml.safe_load(OPENAPI.read_text())
    documented = set(spec["components"]["schemas"]["Error"]["properties"]["error"]["enum"])
    assert documented == set(STATUS_OF)
    assert STATUS_OF["method_not_allowed"] == 405


def test_401_documents_the_bearer_challenge() -> None:
    """The 401 response declares the WWW-Authenticate header every 401 carries."""
    spec = yaml.safe_load(OPENAPI.read_text())
    headers = spec["components"]["responses"]["Unauthenticated"].get("headers", {})
    assert "WWW-Authenticate" in headers
