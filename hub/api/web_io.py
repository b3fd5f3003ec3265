"""Reading request bodies and writing JSON answers, with the checks every body gets first."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import orjson
from aiohttp import web
from multidict import MultiMapping

from hub.errors import MalformedJson, PayloadTooLarge, ProblemDetail, UnsupportedMediaType
from hub.json_keys import repeated_key


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None):
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        content_type="application/json",
        headers=headers,
    )


async def read_body(request: web.Request, limit: int) -> bytes:
    """The raw body, refused with PayloadTooLarge as soon as it passes `limit` bytes."""
    declared = request.content_length
    if declared is not None:
        if declared > limit:
            raise PayloadTooLarge(f"the body is {declared} bytes; the limit is {limit}")
        return await request.read()  # exactly `declared` bytes, in one piece
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def check_json_size(value: Any, limit: int, what: str) -> None:
    """Refuse with PayloadTooLarge a parsed value whose JSON, written compactly in UTF-8 as
    orjson writes it, is over `limit` bytes: how an alert inside a batch meets the limit that a
    single alert's body meets. (A body with spaces or escapes is larger than that; never smaller,
    but for the spelling of a number.) A value nested too deeply to be written is left to the
    schema, which refuses it."""
    try:
        size = len(orjson.dumps(value))
    except orjson.JSONEncodeError:
        return
    if size > limit:
        raise PayloadTooLarge(f"the {what} is {size} bytes as JSON; the limit is {limit}")


def require_json_media_type(request: web.Request) -> None:
    if request.content_type != "application/json":
        raise UnsupportedMediaType(
            f"send application/json, not {request.content_type or 'no Content-Type'}"
        )
    charset = request.charset
    if charset is not None and charset.lower().replace("-", "") != "utf8":
        raise UnsupportedMediaType(f"send UTF-8 JSON, not {charset}")


async def read_json_object(request: web.Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object: 415, 413 and 400 as API.md says, before any other work."""
    require_json_media_type(request)
    return parse_json_object(await read_body(request, limit))


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object; MalformedJson when it is not JSON, not an object, or gives a
    key twice in any object (which copy counts would be a guess the hub does not make)."""
    value = parse_json(raw)
    if not isinstance(value, dict):
        raise MalformedJson("the body must be a JSON object")
    return value


def parse_json(raw: bytes) -> Any:
    """The body as any JSON value, with parse_json_object's checks but the object one."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise MalformedJson(f"the body is not valid JSON: {e.msg}") from e
    repeat = repeated_key(raw, value)
    if repeat is not None:
        pointer, key = repeat
        where = f"the object at {_shortened(pointer)}" if pointer else "the top-level object"
        raise MalformedJson(
            f"the key {_shortened(orjson.dumps(key).decode())} is given more than once in {where}"
        )
    return value


def _shortened(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def query_problems(query: MultiMapping[str], known: Collection[str]) -> list[ProblemDetail]:
    """A problem for each query parameter the operation does not know, and for each given more
    than once: which of the values would count is a guess the hub does not make."""
    problems = []
    for name in dict.fromkeys(query):
        if name not in known:
            problems.append(ProblemDetail(f"/{name}", "query", "is not a known parameter"))
        elif len(query.getall(name)) > 1:
            problems.append(ProblemDetail(f"/{name}", "query", "is given more than once"))
    return problems
