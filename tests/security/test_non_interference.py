"""Non-interference (DESIGN.md, "Sharing policy"): what a caller may not see changes nothing it
gets. The same script of an observer's requests runs against two hubs, each on its own Redis:
world A, where other nodes also post, update, retract and corroborate alerts the observer may
not see (RED to others, AMBER to a civil-society observer, withheld from its country or from
it, with content equal to what the observer later posts), and world B, where those hidden
actions never happen. Visible actions by others happen in both. Every answer the observer gets,
on every route it may call, and everything delivered to it by pull, SSE and webhook, must be
the same in both worlds once hub-assigned ids, cluster ids, event ids and times are mapped
consistently (each world's ids are numbered in the order they first appear).

Observers: a government node of RS, a civil-society node of BA, and the operator, which runs the
hub but may not read what senders kept from it. The operator is shown volume figures that count
alerts it may not read (OPERATOR_VOLUME below, with why); those fields alone are left out of the
comparison. Scripts are drawn by Hypothesis; explicit examples replay the outside review's
findings 1, 3 and 4 (issue 15), which this test failed on before they were fixed, and one it
found itself (a feed typed for its owner, read by the operator)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hub.app import create_app
from hub.context import HUB
from hub.ingest.validation import SchemaSet
from hub.settings import Settings
from hub.store.embedded import RedisServer, free_port, start_redis_server
from tests.fanout_groups import fanned_out
from tests.receivers import Receiver
from tests.security.tally import refused

pytestmark = pytest.mark.timeout(900)

OPERATOR_TOKEN = "ni-operator-token-0123456789abcdef"
OBSERVERS = ("obs-rs", "obs-fc", "operator")
ACTORS = ("al-x", "me-x")
NODES = (  # id, country, kind
    ("obs-rs", "RS", "government"),
    ("obs-fc", "BA", "civil-society"),
    ("al-x", "AL", "government"),
    ("me-x", "ME", "government"),
    ("mk-x", "MK", "government"),
)
# Sharing that hides an alert from each observer (and from no actor but, for RED, the sender).
HIDING: dict[str, list[dict[str, Any]]] = {
    "obs-rs": [
        {"tlp": "RED", "share": {"recipients": ["me-x"]}},
        {"tlp": "GREEN", "share": {"withhold_from": ["RS"]}},
        {"tlp": "AMBER", "share": {"withhold_from": ["obs-rs"]}},
    ],
    "obs-fc": [
        {"tlp": "RED", "share": {"recipients": ["ME"]}},
        {"tlp": "AMBER"},
        {"tlp": "GREEN", "share": {"withhold_from": ["BA"]}},
    ],
    "operator": [
        {"tlp": "RED", "share": {"recipients": ["me-x"]}},
        {"tlp": "AMBER+STRICT"},
        {"tlp": "GREEN", "share": {"withhold_from": ["operator"]}},
    ],
}
# Contents 0-3 are threats; 4-7 disinformation claims (issue 20): 4 and 5 one claim, edited and
# re-scripted (similar via claim), 6 its Albanian telling (similar via entities), 7 another
# claim about the same place (similar to none). A hidden report of one of them must change no
# `similar` list and no `story_id` the observer sees.
CLAIMS = {
    4: ("KFOR gomila trupe i oklopna vozila kod Zvečana 15. januara, 500 evra po vojniku",
        "sr-Latn"),
    5: ("ХИТНО: КФОР гомила трупе и оклопна возила код Звечана 15. јануара, 500 евра по "
        "војнику 🚨", "sr-Cyrl"),
    6: ("KFOR-i po grumbullon trupa pranë Zveçanit më 15 janar, 500 euro për çdo ushtar", "sq"),
    7: ("Kosovska policija uhapsila 12 Srba u Zvečanu bez ikakvog naloga", "sr-Latn"),
}  # fmt: skip
CONTENTS = 8
# The operator's view of the hub's load counts every alert, also those it may not read: how many
# reports each node posted and when, hub-wide ingest totals per minute, the sharing chart, each
# subscription's lag and delivery times, the fan-out's lag, the sharing report's `restricted`
# volume. An operator must see that the hub takes and delivers traffic in order to run it; what
# it is shown is how much, never which alert, its content, sharing, cluster or id. docs/api.md,
# "What the operator sees", says so to senders.
OPERATOR_VOLUME = {
    "/v1/status": (
        "version",
        "uptime_s",
        "generated_at",
        "redis",
        "ingest",
        "fanout",
        "sharing_24h",
        "nodes[].posted",
        "nodes[].rejected",
        "nodes[].last_seen",
        "subscriptions[].lag",
        "subscriptions[].lagging",
        "subscriptions[].last_delivery_at",
    ),
    "/v1/reports/sharing": ("nodes[].restricted", "totals.restricted"),
}


# -- steps ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HiddenPost:
    """World A only: an actor posts an alert hidden from the observer."""

    actor: int
    hiding: int
    content: int


@dataclass(frozen=True)
class HiddenUpdate:
    """World A only: an actor updates one of its hidden alerts to other content."""

    pick: int
    content: int


@dataclass(frozen=True)
class HiddenRetract:
    pick: int


@dataclass(frozen=True)
class HiddenFlood:
    """World A only: many hidden alerts at once (a listing must not count them)."""

    count: int


@dataclass(frozen=True)
class VisiblePost:
    """Both worlds: an actor posts a GREEN alert every node may see."""

    actor: int
    content: int


@dataclass(frozen=True)
class ObserverPost:
    content: int


@dataclass(frozen=True)
class ObserverBatch:
    contents: tuple[int, ...]


@dataclass(frozen=True)
class ObserverUpdate:
    pick: int
    content: int


@dataclass(frozen=True)
class ObserverRetract:
    pick: int


@dataclass(frozen=True)
class HiddenFactCheck:
    """World A only: the sender of one of its hidden alerts fact-checks it (hidden with it)."""

    pick: int


@dataclass(frozen=True)
class VisibleFactCheck:
    """Both worlds: an actor fact-checks one of the visible alerts."""

    pick: int


@dataclass(frozen=True)
class ObserverFactCheck:
    """The observer fact-checks one of the alerts of its last listing."""

    pick: int


@dataclass(frozen=True)
class Read:
    """The observer reads everything it may read now (feeds once fan-out has caught up)."""


Step = (
    HiddenPost
    | HiddenUpdate
    | HiddenRetract
    | HiddenFlood
    | VisiblePost
    | ObserverPost
    | ObserverBatch
    | ObserverUpdate
    | ObserverRetract
    | HiddenFactCheck
    | VisibleFactCheck
    | ObserverFactCheck
    | Read
)

content_ids = st.integers(0, CONTENTS - 1)
steps = st.one_of(
    st.builds(HiddenPost, st.integers(0, 1), st.integers(0, 2), content_ids),
    st.builds(HiddenUpdate, st.integers(0, 20), content_ids),
    st.builds(HiddenRetract, st.integers(0, 20)),
    st.builds(VisiblePost, st.integers(0, 1), content_ids),
    st.builds(ObserverPost, content_ids),
    st.builds(ObserverBatch, st.lists(content_ids, min_size=1, max_size=3).map(tuple)),
    st.builds(ObserverUpdate, st.integers(0, 20), content_ids),
    st.builds(ObserverRetract, st.integers(0, 20)),
    st.builds(HiddenFactCheck, st.integers(0, 20)),
    st.builds(VisibleFactCheck, st.integers(0, 20)),
    st.builds(ObserverFactCheck, st.integers(0, 20)),
    st.just(Read()),
)


def fact_check_body(fc_id: str) -> dict[str, Any]:
    return {"id": fc_id, "claim_reviewed": f"Claim {fc_id}", "url": "https://fc.example/a",
            "rating": {"value": 1, "alternate_name": "False"}, "language": "sr",
            "published_at": "2026-11-21T09:30:00Z", "summary": f"Verdict {fc_id}."}  # fmt: skip


def content(n: int) -> dict[str, Any]:
    """Content n: a domain of its own, and an address shared with content n ^ 1 (related); or,
    for n in CLAIMS, a disinformation claim and a URL of its own."""
    if n in CLAIMS:
        text, language = CLAIMS[n]
        return {
            "kind": "disinformation",
            "claims": [{"text": text, "language": language}],
            "urls": [f"https://c{n}.portal.example/story"],
        }
    return {
        "indicators": [
            {"type": "domain", "value": f"c{n}.campaign.example"},
            {"type": "ipv4", "value": f"203.0.113.{10 + n // 2 % 200}"},
        ]
    }


def alert_body(alert_id: str, n: int, revision: int = 1, **sharing: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": alert_id,
        "revision": revision,
        "kind": "threat",
        "title": f"Campaign {n} ({alert_id} r{revision})",
        "severity": "high",
        "tlp": "GREEN",
        "target_countries": ["AL", "RS"],
        "observed_at": "2026-11-21T10:00:00Z",
        **content(n),
    }
    body.update(sharing)
    return body


# -- normalising what the observer gets ------------------------------------------------------

_IDS = re.compile(
    r"(?P<ulid>\b[0-9A-HJKMNP-TV-Z]{26}\b)"
    r"|(?P<cluster>\bcl_[0-9a-f]{24}\b)"
    r"|(?P<story>\bst_[0-9a-f]{24}\b)"
    r"|(?P<event>\b\d{13}-\d+\b)"
    # STIX ids (TAXII): UUIDv5 of hub ids, so as different between the worlds as those.
    r"|(?P<stix>\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b)"
    r"|(?P<time>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2}))"
    # MISP event and attribute uuids (hub/interop/misp.py: made from hub ids).
    r"|(?P<uuid>\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b)"
    # A MISP event's Unix-seconds times: each world's clock.
    r'|(?P<unix>(?<="timestamp":")\d+|(?<="publish_timestamp":")\d+)'
    r"|(?P<loopback>127\.0\.0\.1:\d+)"  # each world's webhook receiver listens on its own port
    # Seconds between two reports, measured on each world's clock: compared as present or null.
    r'|(?P<duration>(?<="median_time_to_corroboration_s":)\d+(?:\.\d+)?)'
)


@dataclass
class Normaliser:
    """One world's ids numbered in the order they first appear in what its observer got."""

    names: dict[str, str] = field(default_factory=dict)

    def __call__(self, value: Any) -> str:
        text = (
            value
            if isinstance(value, str)
            else orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        )
        return _IDS.sub(self._name, text)

    def _name(self, match: re.Match[str]) -> str:
        kind = match.lastgroup or ""
        if kind in ("time", "loopback", "duration", "unix"):
            return f"<{kind}>"
        token = match.group(0)
        if token not in self.names:
            self.names[token] = f"<{kind}:{len(self.names)}>"
        return self.names[token]


def drop_volume(path: str, body: Any) -> Any:
    """The body without the operator's volume fields of `path` (OPERATOR_VOLUME)."""
    for spec in OPERATOR_VOLUME.get(path, ()):
        parts = spec.split(".")
        _drop(body, parts)
    return body


def _drop(node: Any, parts: list[str]) -> None:
    head, rest = parts[0], parts[1:]
    if head.endswith("[]"):
        items = node.get(head[:-2]) if isinstance(node, dict) else None
        for item in items or []:
            _drop(item, rest)
    elif isinstance(node, dict):
        if rest:
            _drop(node.get(head), rest)
        else:
            node.pop(head, None)


# -- a world -------------------------------------------------------------------------------


@dataclass
class Hidden:
    actor: str
    alert_id: str
    sharing: dict[str, Any]
    revision: int = 1
    retracted: bool = False


@dataclass
class World:
    name: str
    client: TestClient
    observer: str
    tokens: dict[str, str] = field(default_factory=lambda: {"operator": OPERATOR_TOKEN})
    receiver: Receiver | None = None
    subs: dict[str, str] = field(default_factory=dict)  # "pull", "hook", "partner"
    sse: ClientResponse | None = None
    norm: Normaliser = field(default_factory=Normaliser)
    hidden: list[Hidden] = field(default_factory=list)
    own: list[tuple[str, int]] = field(default_factory=list)  # observer's alert ids, revisions
    seen: list[str] = field(default_factory=list)  # hub ids from the observer's last listing
    posted: int = 0  # hidden alerts posted (world A)
    visible_posts: int = 0
    visible: list[tuple[str, str]] = field(default_factory=list)  # (actor, alert id) posted
    checks: int = 0  # fact-checks posted in both worlds
    hidden_checks: int = 0  # fact-checks posted on hidden alerts (world A)

    def auth(self, node: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[node]}"}

    async def call(self, method: str, path: str, node: str, body: Any = None) -> Any:
        resp = await self.client.request(method, path, json=body, headers=self.auth(node))
        text = await resp.text()
        assert resp.status < 500, (self.name, method, path, resp.status, text)
        data = orjson.loads(text) if resp.content_type == "application/json" else text
        return {"status": resp.status, "body": data}

    async def post(self, node: str, body: dict[str, Any]) -> Any:
        return await self.call("POST", "/v1/alerts", node, body)

    async def settle(self) -> None:
        """Until fan-out has taken every logged event and each webhook has been sent all its
        feed holds (read from Redis: only what the observer is shown is under test)."""
        hub = self.client.server.app[HUB]
        async with asyncio.timeout(30):
            while True:
                if await self._settled(hub):
                    return
                await asyncio.sleep(0.02)

    async def _settled(self, hub: Any) -> bool:
        r, keys = hub.redis, hub.keys
        newest = await r.xrevrange(keys.events, count=1)
        if newest and not await fanned_out(r, keys, hub.settings.fanout_shards):
            return False
        hook = self.subs.get("hook")
        if hook is not None:
            last = await r.xrevrange(keys.feed(hook), count=1)
            cursor = await r.hget(keys.delivery(hook), "cursor")
            if (last and cursor != last[0][0]) or await r.zcard(keys.retries(hook)):
                return False
        return True


@contextlib.asynccontextmanager
async def world(
    name: str, redis_url: str, observer: str, schemas: SchemaSet
) -> AsyncIterator[World]:
    redis.Redis.from_url(redis_url).flushall()
    settings_ = Settings(
        redis_url=redis_url,
        data_dir=Path("/nonexistent"),
        bootstrap_token=OPERATOR_TOKEN,
        rate_limit_per_minute=1_000_000,
        allow_private_webhooks=True,
        retry_schedule=(0, 0.2),
        sse_heartbeat_s=0.3,
        webhook_timeout_s=2.0,
    )
    client = TestClient(TestServer(create_app(settings_, schemas)))
    await client.start_server()
    w = World(name, client, observer)
    try:
        for node_id, country, kind in NODES:
            body = {"id": node_id, "name": node_id, "country": country, "kind": kind,
                    "roles": ["publish", "subscribe", "fact-check"]}  # fmt: skip
            answer = await w.call("POST", "/v1/nodes", "operator", body)
            assert answer["status"] == 201, answer
            w.tokens[node_id] = answer["body"]["token"]
        partner = await w.call("POST", "/v1/subscriptions", "me-x", {"delivery": {"type": "pull"}})
        w.subs["partner"] = partner["body"]["id"]
        if observer != "operator":
            pull = await w.call(
                "POST", "/v1/subscriptions", observer, {"delivery": {"type": "pull"}}
            )
            w.subs["pull"] = pull["body"]["id"]
            w.receiver = await Receiver().start()
            delivery = {"type": "webhook", "url": w.receiver.url}
            hook = await w.call("POST", "/v1/subscriptions", observer, {"delivery": delivery})
            w.subs["hook"] = hook["body"]["id"]
            path = f"/v1/subscriptions/{w.subs['hook']}"
            async with asyncio.timeout(10):
                while True:
                    if (await w.call("GET", path, observer))["body"]["status"] == "active":
                        break
                    await asyncio.sleep(0.02)
        stream = w.subs.get("pull", w.subs["partner"])
        w.sse = await client.get(
            f"/v1/subscriptions/{stream}/events",
            headers={**w.auth(observer), "Accept": "text/event-stream"},
        )
        assert w.sse.status == 200
        yield w
    finally:
        if w.sse is not None:
            w.sse.close()
        if w.receiver is not None:
            await w.receiver.stop()
        await client.close()


# -- running a script ----------------------------------------------------------------------


async def run_step(step: Step, a: World, b: World) -> list[tuple[str, Any, Any]]:
    """Run `step`; returns what the observer got in each world, labelled."""
    observer = a.observer
    if isinstance(step, HiddenPost):
        actor = ACTORS[step.actor]
        a.posted += 1
        sharing = HIDING[observer][step.hiding]
        hidden = Hidden(actor, f"h{a.posted}", sharing)
        answer = await a.post(actor, alert_body(hidden.alert_id, step.content, **sharing))
        assert answer["status"] == 201, answer
        a.hidden.append(hidden)
        return []
    if isinstance(step, HiddenUpdate | HiddenRetract):
        live = [h for h in a.hidden if not h.retracted]
        if not live:
            return []
        hidden = live[step.pick % len(live)]
        if isinstance(step, HiddenUpdate):
            hidden.revision += 1
            body = alert_body(hidden.alert_id, step.content, hidden.revision, **hidden.sharing)
            answer = await a.post(hidden.actor, body)
            assert answer["status"] == 200, answer
        else:
            hub_id = await _hub_id_of(a, hidden)
            answer = await a.call("POST", f"/v1/alerts/{hub_id}/retract", hidden.actor, {})
            assert answer["status"] == 200, answer
            hidden.retracted = True
        return []
    if isinstance(step, HiddenFlood):
        sharing = HIDING[observer][0]
        for start in range(0, step.count, 500):
            batch = [alert_body(f"flood-{n}", 100 + n, **sharing)
                     for n in range(start, min(start + 500, step.count))]  # fmt: skip
            answer = await a.call("POST", "/v1/alerts/batch", "al-x", {"alerts": batch})
            assert answer["status"] == 200
            assert all(r["status"] == "created" for r in answer["body"]["results"]), answer
        return []
    if isinstance(step, VisiblePost):
        actor = ACTORS[step.actor]
        for w in (a, b):
            w.visible_posts += 1
        alert_id = f"v{a.visible_posts}"
        for w in (a, b):
            answer = await w.post(actor, alert_body(alert_id, step.content))
            assert answer["status"] == 201, answer
            w.visible.append((actor, alert_id))
        return []
    if isinstance(step, HiddenFactCheck):
        live = [h for h in a.hidden if not h.retracted]
        if not live:
            return []
        hidden = live[step.pick % len(live)]
        a.hidden_checks += 1
        hub_id = await _hub_id_of(a, hidden)
        answer = await a.call("POST", f"/v1/alerts/{hub_id}/fact-checks", hidden.actor,
                              fact_check_body(f"hf{a.hidden_checks}"))  # fmt: skip
        assert answer["status"] == 201, answer
        return []
    if isinstance(step, VisibleFactCheck):
        if not a.visible:
            return []
        actor, alert_id = a.visible[step.pick % len(a.visible)]
        checker = ACTORS[(ACTORS.index(actor) + 1) % len(ACTORS)]
        for w in (a, b):
            w.checks += 1
            hub_id = await _hub_id_of(w, Hidden(actor, alert_id, {}))
            answer = await w.call("POST", f"/v1/alerts/{hub_id}/fact-checks", checker,
                                  fact_check_body(f"vf{w.checks}"))  # fmt: skip
            assert answer["status"] in (201, 409), answer
        return []
    if observer == "operator" and not isinstance(step, Read):
        return []  # the operator does not publish
    if isinstance(step, ObserverPost):
        alert_id = f"o{len(a.own)}"
        for w in (a, b):
            w.own.append((alert_id, 1))
        return [("post", await a.post(observer, alert_body(alert_id, step.content)),
                 await b.post(observer, alert_body(alert_id, step.content)))]  # fmt: skip
    if isinstance(step, ObserverBatch):
        bodies = []
        for n in step.contents:
            alert_id = f"o{len(a.own)}"
            for w in (a, b):
                w.own.append((alert_id, 1))
            bodies.append(alert_body(alert_id, n))
        got = [
            await w.call("POST", "/v1/alerts/batch", observer, {"alerts": bodies}) for w in (a, b)
        ]
        return [("batch", *got)]
    if isinstance(step, ObserverUpdate):
        if not a.own:
            return []
        index = step.pick % len(a.own)
        alert_id, revision = a.own[index]
        for w in (a, b):
            w.own[index] = (alert_id, revision + 1)
        body = alert_body(alert_id, step.content, revision + 1)
        return [("update", await a.post(observer, body), await b.post(observer, body))]
    if isinstance(step, ObserverFactCheck):
        if not a.seen and not b.seen:
            return []
        got = []
        for w in (a, b):
            w.checks += 1
            hub_id = w.seen[step.pick % len(w.seen)] if w.seen else "missing"
            got.append(await w.call("POST", f"/v1/alerts/{hub_id}/fact-checks", observer,
                                    fact_check_body(f"of{w.checks}")))  # fmt: skip
        return [("fact-check", *got)]
    if isinstance(step, ObserverRetract):
        if not a.own:
            return []
        alert_id, _ = a.own[step.pick % len(a.own)]
        got = []
        for w in (a, b):
            mine = await w.call("GET", "/v1/alerts?limit=500", observer)
            ids = [x["hub_id"] for x in mine["body"]["alerts"]
                   if x["id"] == alert_id and x["sender"] == observer]  # fmt: skip
            if not ids:
                got.append(None)  # refused when posted (a batch duplicate): nothing to retract
                continue
            got.append(await w.call("POST", f"/v1/alerts/{ids[0]}/retract", observer, {}))
        return [("retract", *got)]
    assert isinstance(step, Read)
    return await read_everything(a, b)


async def _hub_id_of(w: World, hidden: Hidden) -> str:
    hub = w.client.server.app[HUB]
    hub_id = await hub.redis.hget(hub.keys.sender_ids, f"{hidden.actor}|{hidden.alert_id}")
    return hub_id.decode()


async def read_everything(a: World, b: World) -> list[tuple[str, Any, Any]]:
    """Every read route the observer may call, with filters and paging; feeds and deliveries
    once fan-out has caught up in both worlds."""
    await asyncio.gather(a.settle(), b.settle())
    observer = a.observer
    out: list[tuple[str, Any, Any]] = []

    async def both(label: str, path: str) -> None:
        got = [await w.call("GET", path, observer) for w in (a, b)]
        base = path.split("?")[0]
        for answer in got:
            if isinstance(answer["body"], dict):
                drop_volume(base, answer["body"])
        out.append((f"GET {path}", *got))

    for query in ("limit=2", "kind=threat&limit=3", "since=2000-01-01T00:00:00Z&limit=1",
                  "target_country=RS&limit=500"):  # fmt: skip
        pages = []
        for w in (a, b):
            pages.append(await _pages(w, observer, f"/v1/alerts?{query}", "alerts"))
        out.append((f"listing {query}", *pages))
    for w, pages in zip((a, b), out[0][1:], strict=True):
        w.seen = [x["hub_id"] for page in pages for x in page["body"]["alerts"]]
    for k in range(max(len(a.seen), len(b.seen))):
        got = []
        for w in (a, b):
            hub_id = w.seen[k] if k < len(w.seen) else "missing"
            got.append(await w.call("GET", f"/v1/alerts/{hub_id}", observer))
        out.append((f"alert #{k}", *got))
    for k in range(max(len(a.seen), len(b.seen))):
        got = []
        for w in (a, b):
            hub_id = w.seen[k] if k < len(w.seen) else "missing"
            got.append(await w.call("GET", f"/v1/alerts/{hub_id}/claimreview", observer))
        out.append((f"claimreview #{k}", *got))
    cluster_ids: list[list[str]] = [[], []]
    for n, query in enumerate(("limit=2", "sort=spread&limit=2", "fact_checked=true&limit=200",
                               "fact_checked=false&sort=spread&limit=3",
                               "include=story_id&sort=spread&limit=2")):  # fmt: skip
        pages = [await _pages(w, observer, f"/v1/clusters?{query}", "clusters") for w in (a, b)]
        out.append((f"clusters {query}", *pages))
        if n == 0:
            cluster_ids = [[c["cluster_id"] for p in ps for c in p["body"]["clusters"]]
                           for ps in pages]  # fmt: skip
    for k in range(max(len(ids) for ids in cluster_ids)):
        got = []
        for w, ids in zip((a, b), cluster_ids, strict=True):
            cluster_id = ids[k] if k < len(ids) else "cl_missing"
            got.append(await w.call("GET", f"/v1/clusters/{cluster_id}", observer))
        out.append((f"cluster #{k}", *got))
    for route in ("/v1/subscriptions", "/v1/schemas", "/taxii2/alerthub/collections/"):
        await both(route, route)
    # TAXII: the `visible` collection and, for a partner, its pull subscription's collection.
    collections = [("visible", "visible")]
    if observer != "operator":
        collections.append(("pull", "{pull}"))
    for label, collection in collections:
        for resource in ("objects", "manifest"):
            for query in (
                "limit=3",
                "match[type]=report&limit=1",
                "added_after=2000-01-01T00:00:00Z",
            ):
                pages = []
                for w in (a, b):
                    name = collection.format(pull=w.subs.get("pull", ""))
                    path = f"/taxii2/alerthub/collections/{name}/{resource}/?{query}"
                    pages.append(await _taxii_pages(w, observer, path))
                out.append((f"taxii {label} {resource} {query}", *pages))
    roles = ["partner"] if observer == "operator" else ["pull", "hook"]
    for role in roles:
        pages = [
            await _pages(w, observer, f"/v1/subscriptions/{w.subs[role]}/feed?limit=2", "events")
            for w in (a, b)
        ]
        out.append((f"feed {role}", *pages))
        for suffix in ("", "/dead-letters", "/feed.atom", "/feed.atom?limit=3",
                       "/misp/manifest.json", "/misp/hashes.csv"):  # fmt: skip
            got = [await w.call("GET", f"/v1/subscriptions/{w.subs[role]}{suffix}", observer)
                   for w in (a, b)]  # fmt: skip
            out.append((f"subscription {role}{suffix}", *got))
        manifests = out[-2][1:]
        uuids = [list(m["body"]) if m["status"] == 200 else [] for m in manifests]
        for k in range(max(len(u) for u in uuids)):
            got = []
            for w, found in zip((a, b), uuids, strict=True):
                event = found[k] if k < len(found) else "00000000-0000-0000-0000-000000000000"
                path = f"/v1/subscriptions/{w.subs[role]}/misp/{event}.json"
                got.append(await w.call("GET", path, observer))
            out.append((f"MISP event {role} #{k}", *got))
    if observer == "operator":
        for route in ("/v1/status", "/v1/nodes", "/v1/reports/sharing"):
            await both(route, route)
        for k in range(max(len(a.seen), len(b.seen))):
            got = []
            for w in (a, b):
                hub_id = w.seen[k] if k < len(w.seen) else "missing"
                path = f"/v1/subscriptions/{w.subs['partner']}/explain/{hub_id}"
                got.append(await w.call("GET", path, observer))
            out.append((f"explain #{k}", *got))
    refused("leak: non-interference reads", len(out))
    return out


async def _pages(w: World, node: str, path: str, items: str) -> list[Any]:
    """Every page of a listing or feed, following `next` until it ends or stands still."""
    pages = []
    url = path
    for _ in range(200):
        answer = await w.call("GET", url, node)
        pages.append(answer)
        body = answer["body"]
        if answer["status"] != 200 or body["next"] is None or not body[items]:
            break
        url = re.sub(r"([?&])after=[^&]*", r"\1", path).rstrip("&?")
        url += ("&" if "?" in url else "?") + f"after={body['next']}"
    for page in pages:  # listing cursors are sealed afresh each time: compare presence only
        sealed = items in ("alerts", "clusters")
        if sealed and isinstance(page["body"], dict) and page["body"].get("next"):
            page["body"]["next"] = "<cursor>"
    return pages


async def _taxii_pages(w: World, node: str, path: str) -> list[Any]:
    """Every page of a TAXII collection's objects or manifest, following `next`."""
    pages = []
    url = path
    for _ in range(200):
        answer = await w.call("GET", url, node)
        body = orjson.loads(answer["body"]) if answer["status"] == 200 else answer["body"]
        pages.append({"status": answer["status"], "body": body})
        if answer["status"] != 200 or not body.get("more"):
            break
        url = f"{path}&next={body['next']}"
        body["next"] = "<cursor>"  # sealed afresh each time: compared as present
    return pages


async def delivered(w: World) -> list[Any]:
    """Every event the observer's SSE stream and webhook got, once settled (SSE read until the
    newest event its pull feed holds). The alert inside an event is its stored form when the
    event was sent, which differs with timing alone (an update just before or after a send):
    the events are compared without it; the alerts themselves are compared by the reads."""
    await w.settle()
    out: list[Any] = []
    stream = w.subs.get("pull", w.subs["partner"])
    feed = await _pages(w, w.observer, f"/v1/subscriptions/{stream}/feed?limit=1000", "events")
    events = [e for page in feed for e in page["body"]["events"]]
    if events and w.sse is not None:
        text = ""
        async with asyncio.timeout(15):
            while f"id: {events[-1]['id']}\n" not in text:
                chunk = await w.sse.content.readany()
                assert chunk, "the stream ended"
                text += chunk.decode()
        while not text.endswith("\n\n"):
            text += (await w.sse.content.readany()).decode()
        for frame in text.split("\n\n"):
            fields = dict(line.split(": ", 1) for line in frame.splitlines() if ": " in line)
            if "data" in fields:
                out.append(
                    ("sse", fields.get("id"), fields.get("event"), _envelope(fields["data"]))
                )
    if w.receiver is not None:
        out += [("webhook", _envelope(d.body)) for d in w.receiver.deliveries]
    return out


def _envelope(data: str | bytes) -> dict[str, Any]:
    event = orjson.loads(data)
    event.pop("alert", None)
    return event


async def run_script(
    script: list[Step], observer: str, urls: tuple[str, str], schemas: SchemaSet
) -> None:
    async with (
        world("A", urls[0], observer, schemas) as a,
        world("B", urls[1], observer, schemas) as b,
    ):
        for step in [*script, Read()]:
            for label, got_a, got_b in await run_step(step, a, b):
                assert a.norm(got_a) == b.norm(got_b), (
                    f"{observer} tells the worlds apart at {step} ({label}):\n"
                    f"A: {a.norm(got_a)}\nB: {b.norm(got_b)}"
                )
        seen_a, seen_b = await delivered(a), await delivered(b)
        got_a, got_b = [a.norm(x) for x in seen_a], [b.norm(x) for x in seen_b]
        first = next((i for i, (x, y) in enumerate(zip(got_a, got_b, strict=False)) if x != y), 0)
        assert got_a == got_b, (
            f"{observer}'s deliveries tell the worlds apart at #{first} of "
            f"{len(got_a)} / {len(got_b)}:\nA: {got_a[first : first + 2]}\n"
            f"B: {got_b[first : first + 2]}\nscript: {script}"
        )


# -- the test ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def second_redis(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server: RedisServer = start_redis_server(tmp_path_factory.mktemp("redis-b"), port=free_port())
    yield server
    server.stop()


FINDING_1 = [HiddenPost(0, 0, 0), ObserverPost(1), ObserverUpdate(0, 0), ObserverPost(0)]
FINDING_3 = [VisiblePost(0, 1), HiddenPost(0, 0, 2), Read()]
FINDING_4 = [VisiblePost(0, 1), HiddenFlood(5001), Read()]
# Found by this test: a partner's feed typed its GREEN report `alert.corroborated` after a RED
# one of the same content; read by the operator, that told of the RED report.
TYPED_FOR_OWNER = [HiddenPost(0, 0, 0), VisiblePost(0, 0), Read()]
# Issue 20: an earlier hidden report of a claim, then visible copies in another script and
# language and the observer's own: no similar list names it, no story is named after it.
SIMILAR_CLAIMS = [HiddenPost(0, 0, 4), VisiblePost(1, 6), ObserverPost(5), HiddenPost(1, 2, 5),
                  VisiblePost(0, 7), Read()]  # fmt: skip
# Issue 18: a hidden report's fact-check, in a cluster the observer sees through a visible
# report, with a visible fact-check and the observer's own beside it.
FACT_CHECKED = [VisiblePost(0, 0), HiddenPost(1, 0, 0), HiddenFactCheck(0), Read(),
                VisibleFactCheck(0), ObserverFactCheck(0), HiddenPost(0, 1, 0), Read()]  # fmt: skip


@settings(
    max_examples=int(os.environ.get("ALERTHUB_NI_EXAMPLES", "12")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=os.environ.get("ALERTHUB_NI_RANDOM") is None,
)
@given(observer=st.sampled_from(OBSERVERS), script=st.lists(steps, min_size=2, max_size=12))
@example(observer="obs-rs", script=FINDING_1)
@example(observer="operator", script=FINDING_3)
@example(observer="obs-rs", script=FINDING_4)
@example(observer="operator", script=TYPED_FOR_OWNER)
@example(observer="obs-rs", script=SIMILAR_CLAIMS)
@example(observer="obs-fc", script=SIMILAR_CLAIMS)
@example(observer="operator", script=SIMILAR_CLAIMS)
@example(observer="obs-fc", script=FACT_CHECKED)
@example(observer="obs-rs", script=FACT_CHECKED)
@example(observer="operator", script=FACT_CHECKED)
def test_hidden_actions_change_nothing_the_observer_gets(
    observer: str,
    script: list[Step],
    redis_server: RedisServer,
    second_redis: RedisServer,
    schema_set: SchemaSet,
) -> None:
    """Any script of an observer's posts, updates, retractions, batches and reads gets the same
    answers, feeds, SSE frames and webhook pushes whether or not other nodes also posted,
    updated, retracted and corroborated alerts the observer may not see."""
    asyncio.run(run_script(script, observer, (redis_server.url, second_redis.url), schema_set))
