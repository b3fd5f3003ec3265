"""HTTP handler for the operators' regional sharing report (reports.py holds the definitions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import structlog
from aiohttp import web
from redis.asyncio import Redis

from hub.api.web_io import json_response, query_problems
from hub.context import caller
from hub.errors import ProblemDetail, ValidationFailed
from hub.ops.reports import REPORT_TYPES, LogEntry, epoch_ms, render_csv, sharing_report
from hub.policy import Sharing
from hub.store.keys import Keys

DEFAULT_WINDOW = timedelta(days=30)
MAX_WINDOW = timedelta(days=366)
PAGE = 1000
# A window's log entries are held in memory while counted; past this the caller narrows it.
MAX_ENTRIES = 500_000
FORMATS = ("json", "csv")
KNOWN = frozenset({"since", "until", "format"})


def _time(text: str, name: str, problems: list[ProblemDetail]) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None or moment.timestamp() < 0:
            raise ValueError
    except (ValueError, OverflowError):
        message = "must be an RFC 3339 time with a zone, 1970 or later"
        problems.append(ProblemDetail(f"/{name}", "format", message))
        return None
    return _whole_ms(moment)


def _whole_ms(moment: datetime) -> datetime:
    """`moment` in UTC, cut to the millisecond: stream ids count milliseconds, and the report
    shows since and until to the millisecond, so the window is exactly what it shows."""
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _query(request: web.Request, now: datetime) -> tuple[datetime, datetime, str]:
    """(since, until, format), each checked; 422 names every bad parameter."""
    query = request.query
    problems = query_problems(query, KNOWN)
    until = _time(query["until"], "until", problems) if query.get("until") else _whole_ms(now)
    if query.get("since"):
        since = _time(query["since"], "since", problems)
    else:
        since = until - DEFAULT_WINDOW if until is not None else None
    fmt = query.get("format") or _format_accepted(request.headers.get("Accept", ""))
    if fmt not in FORMATS:
        problems.append(ProblemDetail("/format", "enum", "must be json or csv"))
    if since is not None and until is not None:
        if since >= until:
            problems.append(ProblemDetail("/since", "range", "must be before until"))
        elif until - since > MAX_WINDOW:
            problems.append(
                ProblemDetail("/since", "range", "the window may span 366 days at most")
            )
    if problems or since is None or until is None:
        raise ValidationFailed.in_query(problems)
    return since, until, fmt


def _format_accepted(accept: str) -> str:
    """csv when Accept names text/csv ahead of any JSON type, else json."""
    csv_at = accept.find("text/csv")
    json_at = accept.find("application/json")
    return "csv" if csv_at >= 0 and (json_at < 0 or csv_at < json_at) else "json"


def _text(fields: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in fields.items()}


async def _window(
    redis: Redis, keys: Keys, since: datetime, until: datetime
) -> tuple[list[LogEntry], dict[str, Sharing]]:
    """The log entries in [since, until) (stream ids are ms timestamps; the end is exclusive,
    so an entry at exactly `until` belongs to the next window), read a page at a time, and the
    stored sharing of each report among them, read a page at a time too."""
    entries: list[LogEntry] = []
    sharing: dict[str, Sharing] = {}
    start = str(epoch_ms(since))
    # XRANGE's end is inclusive, and "<ms>" as an end takes every sequence number of that ms:
    # the last millisecond before `until` (since < until, so until's ms is at least 1).
    end = str(epoch_ms(until) - 1)
    while True:
        page = await redis.xrange(keys.events, start, end, count=PAGE)
        if not page:
            break
        batch = [LogEntry.from_stream(i.decode(), _text(f)) for i, f in page]
        entries.extend(batch)
        if len(entries) > MAX_ENTRIES:
            raise ValidationFailed(
                "the window holds too many events",
                [ProblemDetail("/since", "range", f"over {MAX_ENTRIES} events; narrow the window")],
            )
        reports = [e.hub_id for e in batch if e.type in REPORT_TYPES]
        async with redis.pipeline(transaction=False) as pipe:
            for hub_id in reports:
                pipe.hmget(keys.alert(hub_id), ["meta"])
            rows = await pipe.execute() if reports else []
        for hub_id, (meta,) in zip(reports, rows, strict=True):
            if meta is not None:
                sharing[hub_id] = Sharing.from_json(orjson.loads(meta), hub_id)
        if len(page) < PAGE:
            break
        start = "(" + page[-1][0].decode()
    return entries, sharing


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def get_sharing_report(request: web.Request) -> web.Response:
    hub, operator = await caller(request, "operator")
    since, until, fmt = _query(request, datetime.now(UTC))
    entries, sharing = await _window(hub.redis, hub.keys, since, until)
    nodes = await hub.nodes.list()
    # The operator sees the figures of what it may see, like on every other read path; the rest
    # is only counted per sender (`restricted`).
    report = sharing_report(
        entries, sharing, nodes, _rfc3339(since), _rfc3339(until), viewer=operator
    )
    structlog.contextvars.bind_contextvars(report_events=len(entries), report_format=fmt)
    if fmt == "json":
        return json_response(report.as_json())
    filename = f"alerthub-sharing-{since.strftime('%Y%m%dT%H%M%SZ')}.csv"
    return web.Response(
        text=render_csv(report),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def routes() -> list[web.RouteDef]:
    return [web.get("/v1/reports/sharing", get_sharing_report, allow_head=False)]
