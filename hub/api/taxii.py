"""TAXII 2.1, read-only, under /taxii2/ (docs/opencti-taxii.md): discovery, the API root, a node's
collections (`visible` and one per pull subscription it owns) and their objects and manifests.
Bearer or HTTP Basic auth (user = node id, password = token); errors are TAXII error messages
(app.py renders them for every path under /taxii2/)."""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from aiohttp import web

from hub.api.web_io import query_problems
from hub.context import HUB, Hub
from hub.errors import NotAcceptable, NotFound, ProblemDetail, ValidationFailed
from hub.ids import is_ulid
from hub.interop import taxii
from hub.interop.collections import CollectionReader, Page, Source
from hub.nodes import Node
from hub.store.cursors import seal, unseal

PAGING = ("added_after", "limit", "next")


def taxii_response(body: Any, headers: dict[str, str] | None = None) -> web.Response:
    out = {"Content-Type": taxii.TAXII_MEDIA, **(headers or {})}
    return web.Response(body=orjson.dumps(body), headers=out)


async def _caller(request: web.Request) -> tuple[Hub, Node]:
    """The authenticated node (Bearer or Basic), once its Accept is one TAXII 2.1 answers."""
    hub = request.app[HUB]
    node = await hub.auth.authenticate(request.headers.get("Authorization"), allow_basic=True)
    if not taxii.acceptable(request.headers.get("Accept")):
        raise NotAcceptable(f"this API answers only with {taxii.TAXII_MEDIA}")
    return hub, node


async def get_discovery(request: web.Request) -> web.Response:
    hub, _ = await _caller(request)
    base = (hub.settings.public_url or str(request.url.origin())).rstrip("/")
    return taxii_response(taxii.discovery(base))


async def get_api_root(request: web.Request) -> web.Response:
    hub, _ = await _caller(request)
    return taxii_response(taxii.api_root(hub.settings.max_body_bytes))


async def _collections(hub: Hub, node: Node) -> list[dict[str, Any]]:
    # Titles are the ids: OpenCTI's TAXII2 connector names a collection by its title
    # (TAXII2_COLLECTIONS=alerthub.visible).
    found = [
        taxii.collection(
            taxii.VISIBLE,
            taxii.VISIBLE,
            "Every alert you may see: those shared with this node, under each alert's TLP and "
            "sharing instructions.",
        )
    ]
    _, subs = await hub.subscriptions.all()
    for sub in subs:
        if sub.owner == node.id and sub.delivery_type == "pull":
            found.append(
                taxii.collection(
                    sub.id,
                    sub.id,
                    "The alerts of your pull subscription of this id: its filter and sharing "
                    "applied.",
                )
            )
    return found


async def get_collections(request: web.Request) -> web.Response:
    hub, node = await _caller(request)
    return taxii_response({"collections": await _collections(hub, node)})


async def _source(hub: Hub, node: Node, collection_id: str) -> Source:
    """The collection named in the path: `visible`, or a pull subscription the caller owns.
    Any other id, the operator's included, is 404: a partner's subscription is its own."""
    if collection_id == taxii.VISIBLE:
        return Source(taxii.VISIBLE, hub.keys.events, node)
    sub = await hub.subscriptions.get(collection_id) if is_ulid(collection_id) else None
    if sub is None or sub.owner != node.id or sub.delivery_type != "pull":
        raise NotFound(f"no collection {collection_id[:80]}")
    structlog.contextvars.bind_contextvars(subscription=sub.id)
    return Source(sub.id, hub.keys.feed(sub.id), node)


async def get_collection(request: web.Request) -> web.Response:
    hub, node = await _caller(request)
    source = await _source(hub, node, request.match_info["collection_id"])
    for found in await _collections(hub, node):
        if found["id"] == source.collection_id:
            return taxii_response(found)
    raise NotFound("no such collection")


def _paging(
    request: web.Request, hub: Hub, source: Source, extra: tuple[str, ...]
) -> tuple[str | None, int, taxii.Match]:
    """(stream position to read after, limit, match filters) of the query; 400 on bad ones."""
    query = request.query
    problems = query_problems(query, PAGING + extra)
    position: str | None = None
    if query.get("added_after"):
        position = taxii.stream_position(query["added_after"])
        if position is None:
            problems.append(
                ProblemDetail("/added_after", "format", "must be an RFC 3339 time with a zone")
            )
    limit = taxii.DEFAULT_PAGE
    if query.get("limit"):
        try:
            limit = int(query["limit"])
            if not 1 <= limit <= taxii.MAX_PAGE:
                raise ValueError
        except ValueError:
            problems.append(
                ProblemDetail("/limit", "range", f"must be a whole number 1 to {taxii.MAX_PAGE}")
            )
    if query.get("next"):
        sealed = unseal(hub.cursor_key, query["next"]) or ""
        collection_id, _, entry_id = sealed.partition("|")
        if collection_id != source.collection_id or not taxii.is_entry_id(entry_id):
            problems.append(
                ProblemDetail("/next", "format", "must be a `next` from this collection")
            )
        else:
            position = entry_id
    match = taxii.parse_match(query, problems)
    if problems:
        raise ValidationFailed.in_query(problems)
    return position, limit, match


def _page_headers(page: Page, position: str | None) -> dict[str, str]:
    """X-TAXII-Date-Added-First/-Last: of the page's objects; on an empty page, the point read
    from (so a client that sends it back as added_after stays where it was)."""
    if page.objects:
        first, last = page.objects[0][1], page.objects[-1][1]
    else:
        first = last = taxii.date_added(position) if position else taxii.EMPTY_TIME
    return {"X-TAXII-Date-Added-First": first, "X-TAXII-Date-Added-Last": last}


def _next(hub: Hub, source: Source, page: Page) -> str | None:
    if not page.more or page.last_entry is None:
        return None
    return seal(hub.cursor_key, f"{source.collection_id}|{page.last_entry}")


async def _read(
    request: web.Request, extra: tuple[str, ...], object_id: str | None = None
) -> tuple[Hub, Source, Page, str | None]:
    """The page a request asks for. For one object (`object_id`), 404 when the collection
    holds no version of it that the caller may see, whatever the filters."""
    hub, node = await _caller(request)
    source = await _source(hub, node, request.match_info["collection_id"])
    position, limit, match = _paging(request, hub, source, extra)
    if object_id is not None:
        match = taxii.Match((object_id,), (), match.versions, match.spec_versions)
    reader = CollectionReader(hub.redis, hub.keys, hub.nodes)
    page = await reader.page(source, position, limit, match)
    if object_id is not None and not page.objects:
        anywhere = await reader.page(source, None, 1, taxii.Match((object_id,)))
        if not anywhere.objects:
            raise NotFound(f"no object {object_id} in this collection")
    return hub, source, page, position


async def get_objects(request: web.Request) -> web.Response:
    hub, source, page, position = await _read(request, taxii.MATCH_KEYS)
    body = taxii.envelope([o for o, _ in page.objects], page.more, _next(hub, source, page))
    return taxii_response(body, _page_headers(page, position))


async def get_manifest(request: web.Request) -> web.Response:
    hub, source, page, position = await _read(request, taxii.MATCH_KEYS)
    records = [taxii.manifest_record(o, added) for o, added in page.objects]
    body: dict[str, Any] = {"more": page.more}
    if page.more and (token := _next(hub, source, page)):
        body["next"] = token
    if records:
        body["objects"] = records
    return taxii_response(body, _page_headers(page, position))


def _object_id(request: web.Request) -> str:
    object_id = request.match_info["object_id"]
    problems: list[ProblemDetail] = []
    taxii.parse_match({"match[id]": object_id}, problems)
    if problems:
        raise NotFound(f"no object {object_id[:80]}")
    return object_id


async def get_object(request: web.Request) -> web.Response:
    object_id = _object_id(request)
    extra = ("match[version]", "match[spec_version]")
    hub, source, page, position = await _read(request, extra, object_id)
    body = taxii.envelope([o for o, _ in page.objects], page.more, _next(hub, source, page))
    return taxii_response(body, _page_headers(page, position))


async def get_versions(request: web.Request) -> web.Response:
    object_id = _object_id(request)
    hub, source, page, position = await _read(request, ("match[spec_version]",), object_id)
    versions = sorted({taxii.object_version(o, added) for o, added in page.objects})
    body: dict[str, Any] = {"more": page.more}
    if page.more and (token := _next(hub, source, page)):
        body["next"] = token
    if versions:
        body["versions"] = versions
    return taxii_response(body, _page_headers(page, position))


ROOT = f"/taxii2/{taxii.API_ROOT}"
COLLECTION = ROOT + "/collections/{collection_id}"


def routes() -> list[web.RouteDef]:
    return [
        web.get("/taxii2/", get_discovery, allow_head=False),
        web.get(ROOT + "/", get_api_root, allow_head=False),
        web.get(ROOT + "/collections/", get_collections, allow_head=False),
        web.get(COLLECTION + "/", get_collection, allow_head=False),
        web.get(COLLECTION + "/objects/", get_objects, allow_head=False),
        web.get(COLLECTION + "/objects/{object_id}/", get_object, allow_head=False),
        web.get(COLLECTION + "/objects/{object_id}/versions/", get_versions, allow_head=False),
        web.get(COLLECTION + "/manifest/", get_manifest, allow_head=False),
    ]
