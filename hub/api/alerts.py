"""HTTP handlers for alerts: post one or many, read, list, retract."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog
from aiohttp import web

from hub.api.web_io import (
    check_json_size,
    json_response,
    parse_json_object,
    query_problems,
    read_body,
    read_json_object,
    require_json_media_type,
)
from hub.auth import Identity, require_role
from hub.context import HUB, Hub, caller
from hub.errors import (
    Forbidden,
    HubError,
    ProblemDetail,
    ValidationFailed,
)
from hub.ids import is_ulid
from hub.ingest.dedup import Outcome, PreparedAlert, check_claimed_sender, prepare
from hub.logs import get_logger
from hub.nodes import Node
from hub.store.cursors import seal, unseal
from hub.store.redis_faults import store_unavailable
from hub.store.stats import count_rejections

log = get_logger("hub.alerts")

_COUNTRY = re.compile(r"^[A-Z]{2}$")
KINDS = ("threat", "disinformation")
UNKNOWN_KIND = "unknown"  # the kind label of a refused body that names no valid kind


def _prepare_one(
    hub: Hub, body: dict[str, Any], node: Node, thorough: bool = True
) -> PreparedAlert:
    check_claimed_sender(body, node)
    problems = hub.schemas.problems("alert", body, thorough)
    if problems:
        raise ValidationFailed.from_problems(problems, "alert")
    return prepare(body, node, hub.settings.similarity)


def _outcome_status(outcome: Outcome) -> int:
    return 201 if outcome.status in ("created", "corroborated") else 200


async def post_alert(request: web.Request) -> web.Response:
    """The hot path: one Redis round trip when the token's profile is cached, because the store
    script itself refuses a revoked token and counts the rate."""
    hub = request.app[HUB]
    identity = await hub.auth.identify(request.headers.get("Authorization"))
    kind = UNKNOWN_KIND
    try:
        try:
            require_role(identity.node, "publish")
            body = await read_json_object(request, hub.settings.max_body_bytes)
            kind = _kind_of(body)
            alert = _prepare_one(hub, body, identity.node)
        except HubError:
            # Refused before the store: still counted, and a revoked token is a 401 whatever
            # the body.
            await hub.auth.confirm(identity)
            raise
        outcome = await hub.store.submit(alert, identity.node, hub.auth.store_guard(identity))
    except HubError as e:
        await _count_refused(hub, identity.node.id, Counter({(e.code, kind): 1}))
        raise
    hub.metrics.alert(outcome.status, alert.kind)
    structlog.contextvars.bind_contextvars(outcome=outcome.status, hub_id=outcome.hub_id)
    return json_response(outcome.as_json(), status=_outcome_status(outcome))


async def post_batch(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    identity = await hub.auth.identify(request.headers.get("Authorization"))
    try:
        require_role(identity.node, "publish")
        body = await read_json_object(request, hub.settings.max_batch_bytes)
        problems = hub.schemas.problems("batch", body)
        if problems:
            raise ValidationFailed.from_problems(problems, "batch")
    except HubError as e:
        # A batch refused whole counts as one refusal: its alerts were never looked at.
        await hub.auth.confirm(identity)
        await _count_refused(hub, identity.node.id, Counter({(e.code, UNKNOWN_KIND): 1}))
        raise
    alerts = body["alerts"]
    try:
        await hub.auth.confirm(identity, cost=len(alerts))
    except HubError as e:
        refused = Counter(_kind_of(alert) for alert in alerts)
        await _count_refused(
            hub, identity.node.id, Counter({(e.code, k): n for k, n in refused.items()})
        )
        raise
    results = await store_each(hub, identity, alerts)
    structlog.contextvars.bind_contextvars(batch_size=len(alerts))
    return json_response({"results": results})


async def store_each(
    hub: Hub,
    identity: Identity,
    alerts: list[Any],
    explain: Callable[[int, HubError], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Validate and store each alert on its own, as the batch route does, once the caller's
    rate has been charged for all of them: a result per alert, `rejected` with the error body
    for each refused one (`explain` may write that body, given the alert's index). An item
    that is a HubError already is refused with it (a conversion that failed)."""
    guard = hub.auth.store_guard(identity, counted=True)
    results: list[dict[str, Any]] = []
    refusals: Counter[tuple[str, str]] = Counter()
    for index, alert in enumerate(alerts):
        try:
            if isinstance(alert, HubError):
                raise alert
            # Each alert meets the limit of POST /v1/alerts (there a 413), whatever its batch.
            check_json_size(alert, hub.settings.max_body_bytes, "alert")
            # Only the first few refusals get the reference validator's detailed explanation:
            # its cost grows fast with an alert's size, and a batch holds up to 500.
            prepared = _prepare_one(hub, alert, identity.node, thorough=refusals.total() < 10)
            outcome = await hub.store.submit(prepared, identity.node, guard)
        except HubError as e:
            body = explain(index, e) if explain is not None else e.body()
            results.append({"index": index, "status": "rejected", "error": body})
            refusals[e.code, _kind_of(alert)] += 1
            await asyncio.sleep(0)  # a run of refusals never await Redis: let others in
        except Exception as e:
            # Earlier alerts are stored; say exactly which were not, so a retry is safe.
            unavailable = store_unavailable(e)
            if unavailable is None:
                raise
            results.append({"index": index, "status": "rejected", "error": unavailable.body()})
        else:
            hub.metrics.alert(outcome.status, prepared.kind)
            results.append({"index": index, **outcome.as_json()})
    if refusals:
        await _count_refused(hub, identity.node.id, refusals)
    return results


def _kind_of(body: Any) -> str:
    kind = body.get("kind") if isinstance(body, dict) else None
    return kind if kind in KINDS else UNKNOWN_KIND


async def _count_refused(hub: Hub, node_id: str, refusals: Counter[tuple[str, str]]) -> None:
    """Count refused alerts, by (error code, kind), for the status page and the metrics. A
    revoked token is not counted: the caller is no longer a node whose sharing anyone reviews."""
    by_code: Counter[str] = Counter()
    for (code, kind), count in refusals.items():
        if code != "unauthenticated":
            by_code[code] += count
            hub.metrics.alert("rejected", kind, count)
    if by_code:
        await count_rejections(hub.redis, hub.keys, node_id, by_code)


async def get_alert(request: web.Request) -> web.Response:
    hub, node = await caller(request)
    alert = await hub.views.visible(request.match_info["hub_id"], node)
    out = await hub.views.full_json(alert, node)
    found = await hub.fact_checks.of_clusters([alert.cluster_id], node)
    out["fact_checks"] = [f.public_json() for f in found[alert.cluster_id]]
    return json_response(out)


def _list_query(request: web.Request, cursor_key: bytes) -> dict[str, Any]:
    """The listing's query parameters, each checked; 422 names every bad one."""
    query = request.query
    problems = query_problems(query, ("kind", "target_country", "since", "limit", "after"))
    kind = query.get("kind") or None
    if kind is not None and kind not in KINDS:
        problems.append(ProblemDetail("/kind", "enum", "must be threat or disinformation"))
    target = query.get("target_country") or None
    if target is not None and not _COUNTRY.match(target):
        problems.append(
            ProblemDetail("/target_country", "pattern", "must be a two-letter country code")
        )
    since: datetime | None = None
    if query.get("since"):
        try:
            since = datetime.fromisoformat(query["since"].replace("Z", "+00:00"))
            if since.tzinfo is None:
                raise ValueError
        except ValueError:
            problems.append(
                ProblemDetail("/since", "format", "must be an RFC 3339 time with a zone")
            )
    limit = 50
    if query.get("limit"):
        try:
            limit = int(query["limit"])
            if not 1 <= limit <= 500:
                raise ValueError
        except ValueError:
            problems.append(ProblemDetail("/limit", "range", "must be a whole number 1 to 500"))
    after = None
    if query.get("after"):
        after = unseal(cursor_key, query["after"])
        if after is None or not is_ulid(after):
            problems.append(
                ProblemDetail("/after", "format", "must be a `next` from an earlier listing")
            )
    if problems:
        raise ValidationFailed.in_query(problems)
    return {"kind": kind, "target_country": target, "since": since, "limit": limit, "after": after}


async def list_alerts(request: web.Request) -> web.Response:
    hub, node = await caller(request)
    params = _list_query(request, hub.cursor_key)
    alerts, position = await hub.views.listing(node, **params)
    cursor = seal(hub.cursor_key, position) if position is not None else None
    return json_response({"alerts": alerts, "next": cursor})


async def retract_alert(request: web.Request) -> web.Response:
    hub, node = await caller(request, "publish")
    reason = ""
    if request.content_length or request.body_exists:
        require_json_media_type(request)
        raw = await read_body(request, hub.settings.max_body_bytes)
        if raw.strip():
            body = parse_json_object(raw)
            problems = hub.schemas.problems("retract", body)
            if problems:
                raise ValidationFailed.from_problems(problems, "retraction")
            reason = body.get("reason", "")
    hub_id = request.match_info["hub_id"]
    alert = await hub.views.visible(hub_id, node)
    if alert.sharing.sender != node.id:
        raise Forbidden("only the sender may retract an alert")
    newly = await hub.store.retract(hub_id, node, reason)
    structlog.contextvars.bind_contextvars(hub_id=hub_id, outcome="retracted" if newly else "same")
    return json_response({"hub_id": hub_id, "status": "retracted"})


def routes() -> list[web.RouteDef]:
    return [
        web.post("/v1/alerts", post_alert),
        web.post("/v1/alerts/batch", post_batch),
        web.get("/v1/alerts", list_alerts, allow_head=False),
        web.get("/v1/alerts/{hub_id}", get_alert, allow_head=False),
        web.post("/v1/alerts/{hub_id}/retract", retract_alert),
    ]
