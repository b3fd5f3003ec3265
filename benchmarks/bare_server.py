"""The baseline for benchmarks/ingest.py: a bare aiohttp handler that only parses the JSON body
and answers 201, in one process, on the same aiohttp as the hub.

    python -m benchmarks.bare_server --port 8081
"""

from __future__ import annotations

import argparse
import secrets

import orjson
from aiohttp import web

from hub.cli import new_event_loop

ANSWER_STATUS = 201


async def post_alert(request: web.Request) -> web.Response:
    body = orjson.loads(await request.read())
    answer = {"hub_id": secrets.token_hex(13), "status": "created", "id": body.get("id")}
    return web.Response(
        body=orjson.dumps(answer), status=ANSWER_STATUS, content_type="application/json"
    )


async def healthz(_request: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', content_type="application/json")


def create_app() -> web.Application:
    app = web.Application()
    app.add_routes([web.post("/v1/alerts", post_alert), web.get("/healthz", healthz)])
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # The same event loop as `alerthub serve`, so the ratio compares handlers, not loops.
    web.run_app(
        create_app(),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        loop=new_event_loop(),
    )


if __name__ == "__main__":
    main()
