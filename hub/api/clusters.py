"""HTTP handlers for clusters, the fact-checkers' triage queue: every figure, filter, order and
page is computed from the reports the caller may see (ingest/cluster_views.py)."""

from __future__ import annotations

import re
from datetime import datetime

from aiohttp import web

from hub.api.web_io import json_response, query_problems
from hub.context import caller
from hub.errors import ProblemDetail, ValidationFailed
from hub.ids import is_ulid
from hub.ingest.cluster_views import SORTS, ClusterQuery
from hub.store.cursors import seal, unseal

KINDS = ("threat", "disinformation")
PARAMS = (
    "kind", "target_country", "language", "fact_checked", "since", "sort", "limit", "after",
    "story_id", "include",
)  # fmt: skip
MAX_LIMIT = 200
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_STORY = re.compile(r"^st_[0-9a-f]{24}$")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,4}$")


def _query(request: web.Request, cursor_key: bytes) -> tuple[ClusterQuery, str | None]:
    query = request.query
    problems = query_problems(query, PARAMS)
    kind = query.get("kind") or None
    if kind is not None and kind not in KINDS:
        problems.append(ProblemDetail("/kind", "enum", "must be threat or disinformation"))
    target = query.get("target_country") or None
    if target is not None and not _COUNTRY.match(target):
        problems.append(
            ProblemDetail("/target_country", "pattern", "must be a two-letter country code")
        )
    language = query.get("language") or None
    if language is not None and not _LANGUAGE.match(language):
        problems.append(ProblemDetail("/language", "pattern", "must be a BCP 47 tag such as sr"))
    fact_checked = None
    if query.get("fact_checked"):
        if query["fact_checked"] not in ("true", "false"):
            problems.append(ProblemDetail("/fact_checked", "enum", "must be true or false"))
        fact_checked = query["fact_checked"] == "true"
    since = None
    if query.get("since"):
        try:
            since = datetime.fromisoformat(query["since"].replace("Z", "+00:00"))
            if since.tzinfo is None:
                raise ValueError
        except ValueError:
            problems.append(
                ProblemDetail("/since", "format", "must be an RFC 3339 time with a zone")
            )
    story_id = query.get("story_id") or None
    if story_id is not None and not _STORY.match(story_id):
        problems.append(
            ProblemDetail("/story_id", "pattern", "must be a story_id the hub gave (st_…)")
        )
    include = query.get("include") or None
    if include is not None and include != "story_id":
        problems.append(ProblemDetail("/include", "enum", "must be story_id"))
    sort = query.get("sort") or "last_seen"
    if sort not in SORTS:
        problems.append(ProblemDetail("/sort", "enum", "must be last_seen or spread"))
    limit = 50
    if query.get("limit"):
        try:
            limit = int(query["limit"])
            if not 1 <= limit <= MAX_LIMIT:
                raise ValueError
        except ValueError:
            problems.append(
                ProblemDetail("/limit", "range", f"must be a whole number 1 to {MAX_LIMIT}")
            )
    position = None
    if query.get("after"):
        opened = unseal(cursor_key, query["after"])
        kind_of, _, position = (opened or "").partition(":")
        if (
            opened is None
            or kind_of != sort
            or not position
            or (sort == "last_seen" and not is_ulid(position))
        ):
            problems.append(
                ProblemDetail(
                    "/after", "format", "must be a `next` from an earlier page of the same sort"
                )
            )
    if problems:
        raise ValidationFailed(f"{len(problems)} bad query parameters", problems)
    found = ClusterQuery(
        kind, target, language, fact_checked, since, sort, limit, story_id, include is not None
    )
    return found, position


async def list_clusters(request: web.Request) -> web.Response:
    hub, node = await caller(request)
    query, position = _query(request, hub.cursor_key)
    clusters, next_position = await hub.clusters.listing(node, query, position)
    cursor = seal(hub.cursor_key, f"{query.sort}:{next_position}") if next_position else None
    return json_response({"clusters": clusters, "next": cursor})


async def get_cluster(request: web.Request) -> web.Response:
    hub, node = await caller(request)
    return json_response(await hub.clusters.one(request.match_info["cluster_id"], node))


def routes() -> list[web.RouteDef]:
    return [
        web.get("/v1/clusters", list_clusters, allow_head=False),
        web.get("/v1/clusters/{cluster_id}", get_cluster, allow_head=False),
    ]
