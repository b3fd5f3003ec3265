"""The operators' status page: three static files, served without authentication. The page
holds no data; its script reads /v1/status and /v1/alerts with the operator token."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from hub.errors import NotFound

STATIC = Path(__file__).resolve().parent.parent / "static"
CONTENT_TYPES = {
    "status.html": "text/html; charset=utf-8",
    "status.js": "text/javascript; charset=utf-8",
    "status.css": "text/css; charset=utf-8",
}
# No inline script or style, nothing from another origin, no framing: a title a sender wrote
# cannot become code even if a bug put it into markup.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "max-age=60",
}


def _load() -> dict[str, bytes]:
    """The files' bytes, read once when the app is assembled (a missing file fails start-up)."""
    return {name: (STATIC / name).read_bytes() for name in CONTENT_TYPES}


def routes() -> list[web.RouteDef]:
    files = _load()

    def respond(name: str) -> web.Response:
        return web.Response(
            body=files[name], headers={**HEADERS, "Content-Type": CONTENT_TYPES[name]}
        )

    async def page(request: web.Request) -> web.Response:
        return respond("status.html")

    async def asset(request: web.Request) -> web.Response:
        # Only the names in CONTENT_TYPES: the path never reaches the file system.
        name = request.match_info["name"]
        if name not in files:
            raise NotFound("no such file")
        return respond(name)

    return [
        web.get("/status", page, allow_head=False),
        web.get("/status/{name}", asset, allow_head=False),
    ]
