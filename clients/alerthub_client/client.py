"""The asyncio client of an alerthub: every route of API.md as a method, error answers as the
typed exceptions of `errors`, and a subscription's events over Server-Sent Events that resume
after a cut connection with no gap and no repeat."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from alerthub_client.errors import (
    HistoryTruncated,
    HubError,
    HubUnreachable,
    RateLimited,
    Unavailable,
    error_from_answer,
)
from alerthub_client.sse import SseMessage, SseParser, SseProtocolError

USER_AGENT = "alerthub-client/0.1"
MAX_BATCH = 500  # API.md: at most 500 alerts per batch
MAX_BATCH_BYTES = 4 * 1024 * 1024  # API.md: a batch body of at most 4 MiB
_BATCH_HEAD = b'{"alerts":['
_BATCH_TAIL = b"]}"
# The hub sends a heartbeat at least every 15 s: a stream silent for three is dead.
_SSE_SILENCE_S = 45.0
_RESUMABLE = (RateLimited, Unavailable)
# post_alerts: a batch refused whole (429, 503) is sent again after Retry-After, at most this
# long per wait (the hub's rate window is a minute) and 1 s when the answer gives none.
RETRY_AFTER_CAP_S = 60.0
RETRY_AFTER_DEFAULT_S = 1.0
BATCH_RETRY_FOR_S = 180.0


@dataclass(frozen=True)
class Page:
    """One page of a listing or a feed; `next` is the cursor of the page after (None: the end
    of a listing; a feed's `next` is where to read from next time)."""

    items: list[dict[str, Any]]
    next: str | None


@dataclass(frozen=True)
class Event:
    """One feed event: `id` is its event id (a cursor), `type` e.g. alert.created, `data` the
    event JSON. An alert's event (alert.created, .updated, .corroborated, .retracted) has
    hub_id, cluster_id, occurred_at, revision and alert; a node.registered event (a node was
    registered in your country) has occurred_at and node, and no hub_id or alert."""

    id: str
    type: str
    data: dict[str, Any]

    @property
    def hub_id(self) -> str | None:
        """The alert's hub id; None for an event that is not about an alert."""
        value = self.data.get("hub_id")
        return value if isinstance(value, str) else None

    @property
    def node(self) -> dict[str, Any] | None:
        """The registered node (id, name, country, kind, roles, created_at, registered_by) of a
        node.registered event; None for any other."""
        value = self.data.get("node")
        return value if self.type == "node.registered" and isinstance(value, dict) else None


class Backoff:
    """Delays that double from `first` up to `cap`, back to `first` after `reset`."""

    def __init__(self, first: float = 0.1, cap: float = 5.0) -> None:
        self.first = first
        self.cap = cap
        self._next = first

    def next(self) -> float:
        delay = self._next
        self._next = min(self.cap, self._next * 2)
        return delay

    def reset(self) -> None:
        self._next = self.first


def _event_order(event_id: str) -> tuple[int, ...] | None:
    """The hub's event ids ("1764-0") in feed order; None for an id of another shape."""
    parts = event_id.split("-")
    if not all(p.isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def misp_event_list(events: Any) -> list[Any]:
    """The events of a MISP body as a list: one event, a list, or {"response": [...]}."""
    if isinstance(events, dict) and isinstance(events.get("response"), list):
        return list(events["response"])
    return list(events) if isinstance(events, list) else [events]


_INDEX = re.compile(r"^/([0-9]+)")


def _shifted(result: dict[str, Any], offset: int) -> dict[str, Any]:
    """A result of one request with its index and pointers counted from `offset`."""

    def shift(pointer: str) -> str:
        return _INDEX.sub(lambda m: f"/{int(m.group(1)) + offset}", pointer, count=1)

    out = {**result, "index": result["index"] + offset}
    if "pointer" in out:
        out["pointer"] = shift(out["pointer"])
    if isinstance(out.get("error"), dict) and isinstance(out["error"].get("details"), list):
        details = [{**d, "pointer": shift(d.get("pointer", ""))} for d in out["error"]["details"]]
        out["error"] = {**out["error"], "details": details}
    if isinstance(out.get("skipped"), list):
        out["skipped"] = [{**s, "pointer": shift(s.get("pointer", ""))} for s in out["skipped"]]
    return out


def _local_rejection(index: int, error: str, message: str) -> dict[str, Any]:
    return {"index": index, "status": "rejected", "error": {"error": error, "message": message}}


class HubClient:
    """`async with HubClient("http://127.0.0.1:8080", token) as hub: ...`

    Every method raises a `HubError` subclass for an error answer and `HubUnreachable` when no
    answer comes. A `session` passed in is used and left open; otherwise one is made and closed."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout_s: float = 30.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        url = URL(base_url.rstrip("/"))
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"the hub URL must be http(s)://host[:port], not {base_url!r}")
        self.base_url = str(url)
        self.token = token
        self.timeout_s = timeout_s
        self._session = session
        self._own_session = session is None

    async def __aenter__(self) -> HubClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            )
            self._own_session = True
        return self._session

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers

    def _unreachable(self, e: BaseException) -> HubUnreachable:
        cause = str(e) or type(e).__name__
        if isinstance(e, TimeoutError):
            cause = f"no answer within {self.timeout_s} s"
        return HubUnreachable(f"cannot reach the hub at {self.base_url}: {cause}")

    # -- the raw escape hatch ---------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """One request to `path` (from the hub's root). Returns the JSON answer, None for an
        empty one (204), or {"text": ...} for a non-JSON 2xx; raises the typed error otherwise."""
        extra = dict(headers or {})
        if json is not None:
            data = _dumps(json)
            extra.setdefault("Content-Type", "application/json")
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        try:
            async with self._http().request(
                method,
                self.base_url + path,
                data=data,
                headers=self._headers(extra),
                params=query or None,
            ) as resp:
                text = await resp.text(errors="replace")
                if resp.status >= 400:
                    raise error_from_answer(
                        resp.status, resp.reason or "", text, resp.headers.get("Retry-After")
                    )
                if not text.strip():
                    return None
                try:
                    return _json_loads(text)
                except ValueError:
                    return {"text": text}
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise self._unreachable(e) from e

    # -- alerts -------------------------------------------------------------------------------

    async def post_alert(self, alert: dict[str, Any]) -> dict[str, Any]:
        """The answer: hub_id and status created / corroborated / unchanged / updated."""
        return await self.request("POST", "/v1/alerts", json=alert)

    async def post_alerts(
        self,
        alerts: Iterable[dict[str, Any]],
        *,
        batch_size: int = MAX_BATCH,
        on_progress: Callable[[int], None] | None = None,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        retry_for_s: float = BATCH_RETRY_FOR_S,
    ) -> list[dict[str, Any]]:
        """Post many alerts in batches of at most `batch_size` alerts and `max_batch_bytes`
        bytes. One result per alert in input order, `index` its position in the whole input; a
        refused alert is a result with status "rejected" and its `error` (no exception). An
        alert that is not a JSON object, or too big for any batch, is refused here unsent.
        on_progress(done) runs after each batch.

        A batch refused whole with 429 (the hub charges one rate unit per alert, so a big
        input outruns the node's rate per minute) or 503 is sent again after its Retry-After
        (at most 60 s, 1 s when absent, growing from 0.1 s when repeated), for up to
        `retry_for_s` seconds of waiting per batch; sending again is safe, as alerts already
        stored come back "unchanged". Any other error answer for a whole batch (401...), or
        one still refused after that, raises with the results so far in the exception's
        `partial_results`."""
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be 1 to {MAX_BATCH}")
        results: list[dict[str, Any]] = []
        pending: list[tuple[int, bytes]] = []
        reported = [0]
        size = len(_BATCH_HEAD) + len(_BATCH_TAIL)

        async def flush() -> None:
            nonlocal size
            if pending:
                body = _BATCH_HEAD + b",".join(raw for _, raw in pending) + _BATCH_TAIL
                try:
                    answer = await self._post_batch(body, retry_for_s)
                except HubError as e:
                    e.partial_results = sorted(results, key=lambda r: r["index"])
                    raise
                for got in answer["results"]:
                    results.append({**got, "index": pending[got["index"]][0]})
                pending.clear()
                size = len(_BATCH_HEAD) + len(_BATCH_TAIL)
            reported.append(len(results))
            if on_progress is not None:
                on_progress(len(results))

        for index, alert in enumerate(alerts):
            raw = self._encode_for_batch(index, alert, max_batch_bytes, results)
            if raw is None:
                continue
            extra = len(raw) + (1 if pending else 0)
            if pending and (len(pending) >= batch_size or size + extra > max_batch_bytes):
                await flush()
                extra = len(raw)
            pending.append((index, raw))
            size += extra
        if pending:
            await flush()
        elif on_progress is not None and results and len(results) != reported[-1]:
            on_progress(len(results))  # the last alerts were all refused here, unsent
        results.sort(key=lambda r: r["index"])
        return results

    async def _post_batch(self, body: bytes, retry_for_s: float) -> Any:
        """One batch, sent again while it is refused with 429 or 503 and the wait fits in
        `retry_for_s`; the backoff floor keeps a Retry-After of 0 from spinning."""
        backoff = Backoff(first=0.1, cap=30.0)
        waited = 0.0
        while True:
            try:
                return await self.request(
                    "POST",
                    "/v1/alerts/batch",
                    data=body,
                    headers={"Content-Type": "application/json"},
                )
            except _RESUMABLE as e:
                asked = RETRY_AFTER_DEFAULT_S if e.retry_after is None else e.retry_after
                delay = max(backoff.next(), min(asked, RETRY_AFTER_CAP_S))
                if waited + delay > retry_for_s:
                    raise
                waited += delay
                await asyncio.sleep(delay)

    @staticmethod
    def _encode_for_batch(
        index: int, alert: Any, limit: int, results: list[dict[str, Any]]
    ) -> bytes | None:
        """The alert's JSON, or None with a rejected result added when it cannot be sent."""
        if not isinstance(alert, dict):
            results.append(
                _local_rejection(index, "validation_failed", "an alert must be a JSON object")
            )
            return None
        try:
            raw = _dumps(alert)
        except (TypeError, ValueError) as e:
            results.append(_local_rejection(index, "malformed_json", f"not JSON: {e}"))
            return None
        if len(raw) + len(_BATCH_HEAD) + len(_BATCH_TAIL) > limit:
            message = f"the alert is {len(raw)} bytes; a batch holds at most {limit}"
            results.append(_local_rejection(index, "payload_too_large", message))
            return None
        return raw

    async def post_misp_events(
        self, events: Any, *, batch_size: int = MAX_BATCH
    ) -> list[dict[str, Any]]:
        """Post MISP events as alerts of this node (POST /v1/imports/misp): one event
        (`{"Event": ...}`), a list, or MISP's `{"response": [...]}`, sent in requests of at most
        `batch_size` events. One result per event, in order, as the batch route's, with
        `index` and every pointer counted in the whole list of events; `skipped` lists what
        an alert has no field for. A request refused whole raises the typed error."""
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be 1 to {MAX_BATCH}")
        listed = misp_event_list(events)
        results: list[dict[str, Any]] = []
        for start in range(0, len(listed), batch_size):
            chunk = listed[start : start + batch_size]
            answer = await self.request("POST", "/v1/imports/misp", json=chunk)
            results += [_shifted(result, start) for result in answer["results"]]
        return results

    async def get_alert(self, hub_id: str) -> dict[str, Any]:
        return await self.request("GET", f"/v1/alerts/{_segment(hub_id)}")

    async def list_alerts(
        self,
        *,
        kind: str | None = None,
        target_country: str | None = None,
        since: str | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> Page:
        """One page of the alerts the caller may see, newest first."""
        params = {
            "kind": kind,
            "target_country": target_country,
            "since": since,
            "limit": limit,
            "after": after,
        }
        body = await self.request("GET", "/v1/alerts", params=params)
        return Page(body["alerts"], body.get("next"))

    async def iter_alerts(self, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        """Every alert list_alerts(**filters) finds, page after page (`limit` is the page size)."""
        after = filters.pop("after", None)
        while True:
            page = await self.list_alerts(after=after, **filters)
            for alert in page.items:
                yield alert
            if page.next is None or not page.items:
                return
            after = page.next

    async def retract(self, hub_id: str, reason: str) -> dict[str, Any]:
        return await self.request(
            "POST", f"/v1/alerts/{_segment(hub_id)}/retract", json={"reason": reason}
        )

    # -- fact-checks and the triage queue ------------------------------------------------------

    async def post_fact_check(self, hub_id: str, fact_check: dict[str, Any]) -> dict[str, Any]:
        """A fact-check (schemas/fact-check.schema.json) on an alert the caller may see; the
        answer: fact_check_id and status created / unchanged / updated."""
        path = f"/v1/alerts/{_segment(hub_id)}/fact-checks"
        return await self.request("POST", path, json=fact_check)

    async def clusters(self, **query: Any) -> dict[str, Any]:
        """One page of the triage queue: kind, target_country, language, fact_checked
        ("true" / "false"), since, sort ("last_seen" / "spread"), limit, after."""
        return await self.request("GET", "/v1/clusters", params=query)

    async def cluster(self, cluster_id: str) -> dict[str, Any]:
        return await self.request("GET", f"/v1/clusters/{_segment(cluster_id)}")

    # -- subscriptions ------------------------------------------------------------------------

    async def subscribe(
        self, filter: dict[str, Any] | None = None, *, webhook_url: str | None = None
    ) -> dict[str, Any]:
        """A new subscription: pull (read by pull or SSE) unless `webhook_url` is given. The
        answer has id and status, and for a webhook its `secret` (shown only here)."""
        delivery = {"type": "webhook", "url": webhook_url} if webhook_url else {"type": "pull"}
        return await self.request(
            "POST", "/v1/subscriptions", json={"filter": filter or {}, "delivery": delivery}
        )

    async def list_subscriptions(self) -> list[dict[str, Any]]:
        return (await self.request("GET", "/v1/subscriptions"))["subscriptions"]

    async def get_subscription(self, subscription_id: str) -> dict[str, Any]:
        return await self.request("GET", f"/v1/subscriptions/{_segment(subscription_id)}")

    async def update_subscription(
        self, subscription_id: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        """PATCH with `filter`, `url` (webhooks) or `status` ("paused" / "active")."""
        return await self.request(
            "PATCH", f"/v1/subscriptions/{_segment(subscription_id)}", json=patch
        )

    async def delete_subscription(self, subscription_id: str) -> None:
        await self.request("DELETE", f"/v1/subscriptions/{_segment(subscription_id)}")

    async def pull(
        self, subscription_id: str, *, after: str | None = None, limit: int = 100
    ) -> Page:
        """Events after the cursor `after` (None: from the oldest held); pass the page's `next`
        as `after` next time. HistoryTruncated (410) when `after` is older than the feed holds."""
        body = await self.request(
            "GET",
            f"/v1/subscriptions/{_segment(subscription_id)}/feed",
            params={"after": after, "limit": limit},
        )
        return Page(body["events"], body.get("next"))

    async def events(
        self,
        subscription_id: str,
        *,
        last_event_id: str | None = None,
        reconnect: bool = True,
    ) -> AsyncIterator[Event]:
        """The subscription's events, live, over Server-Sent Events, from after `last_event_id`
        (None: from the oldest the feed holds). A cut connection is resumed with Last-Event-ID
        after a backoff (0.1 s doubling to 5 s; 429 and 503 wait at least their Retry-After),
        so no event is skipped or given twice; with reconnect=False the iteration ends at a cut.
        A 429 or any 5xx (a proxy's 502/504, a restarting hub) is tried again the same way;
        no connection at all on the first try raises, and 401/403/404/410/422 raise at once.
        HistoryTruncated when the resume point has left the feed: call again without
        last_event_id to read on from the oldest event held. Close the iterator (break out of
        `async for`, or contextlib.aclosing) to close the stream."""
        path = f"/v1/subscriptions/{_segment(subscription_id)}/events"
        last = last_event_id
        backoff = Backoff()
        connected_once = False
        while True:
            try:
                async for event in self._stream_once(path, last):
                    connected_once = True
                    if last is not None:
                        seen, now = _event_order(last), _event_order(event.id)
                        if seen is not None and now is not None and now <= seen:
                            continue  # already given: a resume never repeats an event
                    if event.id:  # an empty id must not make a resume replay the feed
                        last = event.id
                    backoff.reset()
                    yield event
                connected_once = True
                delay = backoff.next()
            except HubUnreachable:
                if not connected_once:
                    raise
                delay = backoff.next()
            except HubError as e:
                if not reconnect or not _passing(e):
                    raise
                delay = max(backoff.next(), min(e.retry_after or 0.0, RETRY_AFTER_CAP_S))
            if not reconnect:
                return
            await asyncio.sleep(delay)

    async def _stream_once(self, path: str, last_event_id: str | None) -> AsyncIterator[Event]:
        """One SSE connection: its events until it ends. A cut (reset, EOF, silence) just ends
        it; an error answer raises the typed error; no connection raises HubUnreachable."""
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=self.timeout_s,
            sock_read=max(self.timeout_s, _SSE_SILENCE_S),
        )
        parser = SseParser()
        try:
            async with self._http().get(
                self.base_url + path, headers=self._headers(headers), timeout=timeout
            ) as resp:
                if resp.status >= 400:
                    text = await resp.text(errors="replace")
                    raise error_from_answer(
                        resp.status, resp.reason or "", text, resp.headers.get("Retry-After")
                    )
                if resp.content_type != "text/event-stream":
                    raise HubError(
                        resp.status, "bad_stream", f"not an event stream: {resp.content_type}"
                    )
                try:
                    async for chunk in resp.content.iter_any():
                        for item in parser.feed(chunk):
                            if isinstance(item, SseMessage):
                                yield _to_event(item)
                            # anything else is a comment: a heartbeat, skipped
                except (aiohttp.ClientError, TimeoutError, OSError):
                    return  # cut mid-stream: the caller resumes from the last event
        except SseProtocolError as e:
            raise HubError(200, "bad_stream", str(e)) from e
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise self._unreachable(e) from e

    # -- nodes and operations -----------------------------------------------------------------

    async def create_node(self, node: dict[str, Any]) -> dict[str, Any]:
        """The node as created, with its `token` (shown only here). Operator only."""
        return await self.request("POST", "/v1/nodes", json=node)

    async def list_nodes(self) -> list[dict[str, Any]]:
        return (await self.request("GET", "/v1/nodes"))["nodes"]

    async def revoke_node(self, node_id: str) -> None:
        await self.request("DELETE", f"/v1/nodes/{_segment(node_id)}")

    async def status(self) -> dict[str, Any]:
        return await self.request("GET", "/v1/status")

    async def ready(self) -> bool:
        """True when the hub answers /readyz 200, False for 503 (its Redis is unreachable);
        HubUnreachable when no answer comes at all."""
        try:
            await self.request("GET", "/readyz")
        except Unavailable:
            return False
        return True


def _passing(error: HubError) -> bool:
    """An error answer worth trying again: 429, or a 5xx (the hub or a proxy before it is
    busy, restarting or briefly unreachable); anything else will not change by waiting."""
    return error.status == 429 or error.status >= 500


def _segment(value: str) -> str:
    """A path segment, quoted so that an id can never reach another route."""
    return quote(value, safe="")


def _json_loads(text: str) -> Any:
    return json.loads(text)


def _to_event(message: SseMessage) -> Event:
    try:
        data = json.loads(message.data) if message.data else {}
    except ValueError as e:
        raise HubError(200, "bad_stream", f"event {message.id} is not JSON: {e}") from e
    if not isinstance(data, dict):
        raise HubError(200, "bad_stream", f"event {message.id} is not a JSON object")
    if message.event == "history-truncated":
        text = str(data.get("message") or "the resume point is older than the feed holds")
        raise HistoryTruncated(
            410, "history_truncated", text, body={"error": "history_truncated", **data}
        )
    return Event(message.id or "", message.event, data)
