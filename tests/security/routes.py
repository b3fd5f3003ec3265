"""The routes the app serves, read from its router: the security tests are generated from it."""

from __future__ import annotations

import re

from hub.app import create_app
from hub.ingest.validation import SchemaSet
from hub.settings import Settings


def served_routes() -> list[tuple[str, str]]:
    """(method, path pattern) of every route, as aiohttp's router lists them."""
    app = create_app(Settings(redis_url="redis://unused"), SchemaSet())
    return sorted({(r.method, r.resource.canonical) for r in app.router.routes()})


def path_params(pattern: str) -> list[str]:
    """The names of a pattern's path parameters: "/v1/alerts/{hub_id}" -> ["hub_id"]."""
    return re.findall(r"\{([^}/:]+)", pattern)
