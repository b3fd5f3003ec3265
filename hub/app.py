"""`create_app(settings)`: the one place the service is assembled."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator

import orjson
import structlog
from aiohttp import web

from hub.api import alerts as api_alerts
from hub.api import atom_feed as api_atom_feed
from hub.api import clusters as api_clusters
from hub.api import email_links as api_email_links
from hub.api import fact_checks as api_fact_checks
from hub.api import meta as api_meta
from hub.api import metrics as api_metrics
from hub.api import misp_feed as api_misp_feed
from hub.api import misp_import as api_misp_import
from hub.api import nodes as api_nodes
from hub.api import page as api_page
from hub.api import reports as api_reports
from hub.api import status as api_status
from hub.api import subscriptions as api_subscriptions
from hub.api import taxii as api_taxii
from hub.api.web_io import json_response
from hub.auth import Authenticator
from hub.background import background_work
from hub.context import HUB, Hub
from hub.delivery.feed_news import FeedNews
from hub.delivery.feeds import FeedReader
from hub.delivery.subscriptions import SubscriptionStore
from hub.errors import (
    HubError,
    MalformedJson,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthenticated,
    Unavailable,
)
from hub.ids import new_ulid
from hub.ingest.alert_views import AlertViews
from hub.ingest.cluster_views import ClusterViews
from hub.ingest.dedup import AlertStore, file_older_alerts
from hub.ingest.fact_checks import FactCheckStore
from hub.ingest.similar_views import SimilarViews
from hub.ingest.similarity.signature import warm_up as similarity_warm_up
from hub.ingest.validation import SchemaSet
from hub.interop import taxii
from hub.logs import get_logger
from hub.nodes import OPERATOR_NODE_ID, NodeRegistry
from hub.ops.metrics import Metrics, route_of
from hub.settings import Settings, redact_url
from hub.store.batching import ReplicasAck
from hub.store.connect import RedisConnector, check_server_version, server_role
from hub.store.keys import Keys
from hub.store.redis_faults import store_unavailable
from hub.store.scripts import Scripts
from hub.store.stats import LastSeen

log = get_logger("hub.app")

STATUS_OF: dict[str, int] = {
    "malformed_json": 400,
    "unauthenticated": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "not_acceptable": 406,
    "conflict": 409,
    "history_truncated": 410,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "validation_failed": 422,
    "rate_limited": 429,
    "unavailable": 503,
}
REALM = "alerthub"  # of the bearer challenge on a 401
TAXII_PREFIX = "/taxii2/"  # errors on these paths are TAXII error messages
# A Redis outage or refusal is usually short (a restart, a failover, memory freed): clients that
# honour Retry-After come back soon, and a retry of the same request is always safe.
UNAVAILABLE_RETRY_AFTER_S = 1
SETTINGS = web.AppKey("settings", Settings)
SCHEMAS_KEY = web.AppKey("schema_set", SchemaSet)
OPERATOR_PROFILE = {
    "id": OPERATOR_NODE_ID,
    "name": "Hub operator",
    "country": None,
    "kind": "operator",
    "roles": ["operator"],
}


def _error_response(error: HubError, request: web.Request | None = None) -> web.Response:
    if request is not None and request.path.startswith(TAXII_PREFIX):
        return _taxii_error(error)
    headers = None
    if isinstance(error, RateLimited):
        headers = {"Retry-After": str(error.retry_after_s)}
    elif isinstance(error, Unavailable):
        headers = {"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)}
    elif isinstance(error, Unauthenticated):
        headers = {"WWW-Authenticate": bearer_challenge(error)}
    elif isinstance(error, MethodNotAllowed):
        headers = {"Allow": error.allowed}
    return json_response(error.body(), status=STATUS_OF.get(error.code, 500), headers=headers)


def _taxii_error(error: HubError) -> web.Response:
    """A hub error as a TAXII 2.1 error message. TAXII has no 422: bad query parameters are 400,
    as TAXII clients expect; a 401 offers Basic beside Bearer, since TAXII clients speak it."""
    status = STATUS_OF.get(error.code, 500)
    if status == 422:
        status = 400
    headers = {"Content-Type": taxii.TAXII_MEDIA}
    if isinstance(error, RateLimited):
        headers["Retry-After"] = str(error.retry_after_s)
    elif isinstance(error, Unavailable):
        headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER_S)
    elif isinstance(error, Unauthenticated):
        headers["WWW-Authenticate"] = f'{bearer_challenge(error)}, Basic realm="{REALM}"'
    elif isinstance(error, MethodNotAllowed):
        headers["Allow"] = error.allowed
    details = [d.as_json() for d in error.details] or None
    body = taxii.error_message(status, error.code, error.message, details)
    return web.Response(body=orjson.dumps(body), status=status, headers=headers)


def bearer_challenge(error: Unauthenticated) -> str:
    """The WWW-Authenticate value of a 401 (RFC 6750, section 3): the scheme and realm, and
    when a token was presented, the error code and the message as its description."""
    challenge = f'Bearer realm="{REALM}"'
    if error.token_error is not None:
        # A quoted-string of RFC 6750's restricted characters: printable ASCII but " and \.
        text = "".join(c for c in error.message if " " <= c <= "~" and c not in '"\\')
        challenge += f', error="{error.token_error}", error_description="{text}"'
    return challenge


def _from_aiohttp(exc: web.HTTPException) -> HubError | None:
    """aiohttp's own refusals (unknown route, wrong method, oversize) in our error shape."""
    if exc.status == 404:
        return NotFound("no such resource")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return MethodNotAllowed(f"{exc.method} is not allowed here; Allow: {allowed}", allowed)
    if exc.status == 413:
        return PayloadTooLarge("the body is over the limit")
    if exc.status == 400:
        return MalformedJson(exc.text or "bad request")
    return None


def _request_id(request: web.Request) -> str:
    given = request.headers.get("X-Request-ID", "")
    if 0 < len(given) <= 64 and all(c.isalnum() or c in "-_." for c in given):
        return given
    return new_ulid()  # unique across processes, time-ordered, and cheaper than a token


@web.middleware
async def request_context(request: web.Request, handler) -> web.StreamResponse:
    """Request id, errors as JSON bodies, and one summary line per request."""
    structlog.contextvars.clear_contextvars()
    request_id = _request_id(request)
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    try:
        response = await handler(request)
    except HubError as e:
        response = _error_response(e, request)
    except web.HTTPException as e:
        converted = _from_aiohttp(e)
        if converted is None:
            body = {"error": "http_error", "message": e.reason}
            response = json_response(body, status=e.status)
        else:
            response = _error_response(converted, request)
    except Exception as e:
        unavailable = store_unavailable(e)
        if unavailable is not None:
            log.warning("store_unavailable", error=type(e).__name__, detail=str(e)[:200])
            response = _error_response(unavailable, request)
        else:
            log.exception("request_failed")
            response = json_response(
                {"error": "internal", "message": f"internal error; request id {request_id}"},
                status=500,
            )
    response.headers["X-Request-ID"] = request_id
    duration_s = time.perf_counter() - started
    if HUB in request.app:
        request.app[HUB].metrics.observe_request(
            route_of(request), request.method, response.status, duration_s
        )
    log.info(
        "request_finished",
        method=request.method,
        path=request.path,
        status=response.status,
        duration_ms=round(duration_s * 1000, 2),
    )
    return response


async def _redis_and_services(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if settings.redis_url is None:
        raise RuntimeError("create_app needs settings.redis_url (the CLI starts embedded Redis)")
    # A plain Redis or a primary behind Sentinel (hub.store.connect), on a blocking pool.
    connector = RedisConnector.from_url(settings.redis_url)
    client = connector.client(max_connections=256, timeout_s=5.0)
    try:
        version = await check_server_version(client)
        role = await server_role(client)
        if role.connected_replicas < settings.min_replicas_ack:
            # Not fatal (replicas may be starting too), but until they attach every post is 503.
            log.warning(
                "replicas_missing",
                attached=role.connected_replicas,
                min_replicas_ack=settings.min_replicas_ack,
            )
        keys = Keys(settings.key_prefix)
        scripts = Scripts.register(client)
        replicas_ack = (
            ReplicasAck(settings.min_replicas_ack, settings.replicas_ack_timeout_s)
            if settings.min_replicas_ack > 0
            else None
        )
        batcher = connector.batcher(client, replicas_ack=replicas_ack)
        # Fan-out and feed reads on a connection of their own: Redis answers one connection in
        # order, so their long runs of commands would otherwise hold up posts behind them. On a
        # cluster, feed appends wait for the feed master's replicas too (ClusterBatcher).
        delivery_batcher = connector.batcher(client, many_ack=replicas_ack)
        await scripts.load(client)
        nodes = NodeRegistry(client, keys, scripts)
        operator = await nodes.ensure(OPERATOR_PROFILE)
        await client.set(keys.cursor_key, secrets.token_bytes(32), nx=True)
        cursor_key = await client.get(keys.cursor_key)
        filed = await file_older_alerts(client, keys)
        if filed:
            log.info("older_alerts_filed", count=filed)
        similar = SimilarViews(
            client, keys, settings.dedup_window_s, settings.similarity_threshold, cursor_key
        )
        auth = Authenticator(
            redis=client,
            keys=keys,
            scripts=scripts,
            rate_limit_per_minute=settings.rate_limit_per_minute,
            bootstrap_token=settings.bootstrap_token,
            operator=operator,
            last_seen=LastSeen(client, keys),
        )
        fact_checks = FactCheckStore(client, keys, scripts)
        app[HUB] = Hub(
            settings=settings,
            schemas=app[SCHEMAS_KEY],
            redis=client,
            keys=keys,
            scripts=scripts,
            auth=auth,
            nodes=nodes,
            store=AlertStore(
                client, keys, scripts, settings.dedup_window_s, batcher, cluster_key=cursor_key
            ),
            views=AlertViews(client, keys, settings.dedup_window_s, similar),
            cursor_key=cursor_key,
            subscriptions=SubscriptionStore(client, keys, scripts),
            feeds=FeedReader(
                client,
                keys,
                scripts,
                delivery_batcher,
                dedup_window_s=settings.dedup_window_s,
                similar=similar,
            ),
            news=FeedNews(client, keys.feed_news, keys.node_revoked),
            fact_checks=fact_checks,
            clusters=ClusterViews(
                client, keys, scripts, fact_checks, settings.dedup_window_s, similar
            ),
            metrics=Metrics(settings.role, settings.metrics_dir),
        )
        if settings.similarity and settings.role != "delivery":
            # In a thread, so that start-up does not wait: the first claim would otherwise wait
            # the 1-3 s its dictionaries take to load.
            asyncio.get_running_loop().run_in_executor(None, similarity_warm_up)
        log.info(
            "hub_started",
            redis=redact_url(settings.redis_url),
            redis_version=version,
            prefix=settings.key_prefix,
            role=settings.role,
            min_replicas_ack=settings.min_replicas_ack,
        )
        async with background_work(app[HUB], delivery_batcher):
            yield
        await batcher.close()
        await delivery_batcher.close()
    finally:
        await client.aclose()
        await connector.aclose()


async def _stop_streams(app: web.Application) -> None:
    """Before aiohttp waits for open requests: end every SSE stream and background loop."""
    if HUB in app:
        app[HUB].stopping.set()
        app[HUB].news.wake_all()


def create_app(settings: Settings, schemas: SchemaSet | None = None) -> web.Application:
    app = web.Application(
        middlewares=[request_context],
        client_max_size=settings.max_batch_bytes + 1,
    )
    app[SETTINGS] = settings
    schemas = schemas or SchemaSet()
    schemas.prepare_explanations()  # now, rather than while the first refused body waits
    app[SCHEMAS_KEY] = schemas
    app.cleanup_ctx.append(_redis_and_services)
    app.on_shutdown.append(_stop_streams)
    # A `delivery` process serves the probes and /metrics only: every other path is a 404 there.
    app.add_routes(api_meta.probe_routes() + api_metrics.routes())
    if settings.role == "delivery":
        return app
    app.add_routes(
        api_meta.routes()
        + api_nodes.routes()
        + api_reports.routes()
        + api_alerts.routes()
        + api_fact_checks.routes()
        + api_clusters.routes()
        + api_subscriptions.routes()
        + api_atom_feed.routes()
        + api_misp_feed.routes()
        + api_misp_import.routes()
        + api_email_links.routes()
        + api_page.routes()
        + api_status.routes()
        + api_taxii.routes()
    )
    return app
