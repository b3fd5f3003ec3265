"""Hypothesis drives post / corroborate / update / retract / subscribe / pull sequences from
nodes of four countries against the real hub (an aiohttp server on loopback, its own Redis key
prefix per example, a real Redis), and after every step the stored alerts, every node's listing
and every subscription's feed must agree with tests/fuzz/alert_model.py.

Bounded and reproducible in CI (derandomized); ALERTHUB_FUZZ_EXAMPLES (default 12) sets the
number of sequences, ALERTHUB_FUZZ_STEPS (default 25) their length, and ALERTHUB_FUZZ_RANDOM=1
new random ones each run, for a longer local search.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
import requests
from aiohttp import web
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from hub.app import create_app
from hub.ingest.validation import SchemaSet
from hub.settings import Settings
from hub.store.embedded import RedisServer, free_port, start_redis_server
from hub.store.keys import Keys
from tests.conftest import OPERATOR_TOKEN
from tests.fuzz.alert_model import (
    SEVERITIES,
    Alert,
    Content,
    Filter,
    Model,
    Node,
    Subscription,
    language,
    may_see,
)
from tests.hubproc import wait_until

T = TypeVar("T")
EXAMPLES = int(os.environ.get("ALERTHUB_FUZZ_EXAMPLES", "12"))
STEPS = int(os.environ.get("ALERTHUB_FUZZ_STEPS", "25"))
RANDOM = os.environ.get("ALERTHUB_FUZZ_RANDOM", "") not in ("", "0")

NODES = (
    Node("rs-cert", "RS", "government"),
    Node("al-cert", "AL", "government", withhold_from=frozenset({"RS"})),  # standing default
    Node("xk-cert", "XK", "government"),
    Node("ba-factcheck", "BA", "civil-society"),
)
NODE_IDS = tuple(n.id for n in NODES)
TLPS = ("CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED")
RECIPIENTS = ((), ("ba-factcheck",), ("XK",), ("al-cert", "ba-factcheck"))
WITHHOLDS = ((), ("RS",), ("ba-factcheck",), ("xk-cert",))
FILTERS = (
    Filter(),
    Filter(kinds=frozenset({"threat"})),
    Filter(kinds=frozenset({"disinformation"}), languages=frozenset({"sr"})),
    Filter(min_severity="high"),
    Filter(source_countries=frozenset({"AL", "XK"})),
    Filter(languages=frozenset({"sr-Cyrl"})),
)
# One Serbian claim per campaign, in both scripts: the hub must take them as one content.
CLAIMS = (
    {"Cyrl": "НАТО гомила трупе код Звечана", "Latn": "NATO gomila trupe kod Zvečana"},
    {"Cyrl": "Влада крије податке о изборима", "Latn": "Vlada krije podatke o izborima"},
)
CAMPAIGNS = len(CLAIMS)


def alert_body(
    alert: Alert | None = None, *, revision: int | None = None, **fields: Any
) -> dict[str, Any]:
    """The JSON body of a report. Built from the model's fields alone, so that one set of
    fields always gives the same bytes (the hub compares resends byte for byte)."""
    f = {
        "alert_id": alert.alert_id if alert else None,
        "content": alert.content if alert else None,
        "tlp": alert.tlp if alert else None,
        "recipients": alert.recipients if alert else frozenset(),
        "withhold_from": alert.withhold_from if alert else frozenset(),
        "title": alert.title if alert else None,
        "severity": alert.severity if alert else None,
    }
    f.update(fields)
    content: Content = f["content"]
    body: dict[str, Any] = {
        "id": f["alert_id"],
        "revision": revision if revision is not None else (alert.revision if alert else 1),
        "kind": content.kind,
        "title": f["title"],
        "severity": f["severity"],
        "tlp": f["tlp"],
        "target_countries": ["RS", "XK"],
        "languages": [language(content)],
        "observed_at": "2026-11-20T08:15:00Z",
        "share": {
            "recipients": sorted(f["recipients"]),
            "withhold_from": sorted(f["withhold_from"]),
        },
    }
    c = content.campaign
    if content.kind == "threat":
        body["indicators"] = [{"type": "domain", "value": f"campaign{c}.phish.example"}]
        if content.variant:
            body["indicators"].append({"type": "ipv4", "value": f"203.0.113.{10 + c}"})
    else:
        host = "news" if content.variant == 0 else "mirror"
        body["claims"] = [{"text": CLAIMS[c][content.script], "language": language(content)}]
        body["urls"] = [f"https://{host}{c}.example/story"]
        body["narrative"] = "A campaign copied across the region"
    return body


def body_key(body: dict[str, Any], content: Content) -> tuple:
    """What makes two bodies the same bytes: the model compares these, not the bytes."""
    share = body["share"]
    return (
        content,
        body["tlp"],
        tuple(share["recipients"]),
        tuple(share["withhold_from"]),
        body["revision"],
        body["title"],
        body["severity"],
    )


def filter_json(f: Filter) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kinds": sorted(f.kinds),
        "source_countries": sorted(f.source_countries),
        "languages": sorted(f.languages),
    }
    if f.min_severity:
        out["min_severity"] = f.min_severity
    return out


class LoopThread:
    """An event loop in a thread of its own, so the synchronous state machine can run the hub's
    aiohttp server beside it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclasses.dataclass
class Env:
    """What every example shares: a Redis server, the loop thread, the compiled schemas, and
    the tallies for the closing note."""

    redis_url: str
    data_dir: Path
    loop: LoopThread
    schemas: SchemaSet
    prefixes: Iterator[int] = dataclasses.field(default_factory=itertools.count)
    tally: dict[str, int] = dataclasses.field(default_factory=dict)

    def count(self, what: str, n: int = 1) -> None:
        self.tally[what] = self.tally.get(what, 0) + n


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("state-machine")
    server: RedisServer = start_redis_server(tmp / "redis", port=free_port())
    loop = LoopThread()
    try:
        yield Env(server.url, tmp / "data", loop, SchemaSet())
    finally:
        loop.close()
        server.stop()


class Hub:
    """One hub for one example: an aiohttp server on loopback under a fresh key prefix."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.keys = Keys(f"sm{os.getpid()}-{next(env.prefixes)}")
        self.settings = Settings(
            redis_url=env.redis_url,
            data_dir=env.data_dir,
            bootstrap_token=OPERATOR_TOKEN,
            rate_limit_per_minute=1_000_000,
            key_prefix=self.keys.prefix,
        )
        self.port = free_port()
        self.runner = env.loop.run(self._start())
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.http = requests.Session()
        self.redis = redis.Redis.from_url(env.redis_url)
        self.tokens = {"operator": OPERATOR_TOKEN}
        wait_until(self._ready, 10, what="the hub's readyz")

    async def _start(self) -> web.AppRunner:
        runner = web.AppRunner(create_app(self.settings, self.env.schemas))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        return runner

    def _ready(self) -> bool:
        return self.http.get(f"{self.base_url}/readyz", timeout=5).status_code == 200

    def close(self) -> None:
        self.http.close()
        self.redis.close()
        self.env.loop.run(self.runner.cleanup())

    def request(self, method: str, path: str, who: str, body: Any = None) -> requests.Response:
        self.env.count("requests")
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        url = self.base_url + path
        return self.http.request(method, url, json=body, headers=headers, timeout=10)

    def fanned_out(self) -> bool:
        """Whether fan-out has handed every logged event to the feeds (nothing read and not
        acknowledged, nothing unread)."""
        events = self.keys.events
        if not self.redis.exists(events):
            return True
        last = self.redis.xinfo_stream(events)["last-generated-id"]
        groups = self.redis.xinfo_groups(events)
        return any(g["pending"] == 0 and g["last-delivered-id"] == last for g in groups)


class AlertMachine(RuleBasedStateMachine):
    """Sequences of what nodes do; the model says what the hub must then show."""

    def __init__(self, env: Env) -> None:
        super().__init__()
        self.env = env
        self.model = Model()
        self.hub = Hub(env)
        self.fresh = itertools.count()
        self.seen_ids: dict[str, list[str]] = {}  # subscription -> event ids read so far
        self.cursor: dict[str, int] = {}  # subscription -> events taken by pull_page
        for node in NODES:
            body = {
                "id": node.id,
                "name": node.id,
                "country": node.country,
                "kind": node.kind,
                "roles": ["publish", "subscribe"],
                "defaults": {"withhold_from": sorted(node.withhold_from)},
            }
            resp = self.hub.request("POST", "/v1/nodes", "operator", body)
            assert resp.status_code == 201, resp.text
            self.hub.tokens[node.id] = resp.json()["token"]
            self.model.nodes[node.id] = node

    def teardown(self) -> None:
        self.hub.close()

    # -- helpers -------------------------------------------------------------------------
    def _pick(self, pick: int) -> Alert:
        alerts = list(self.model.alerts.values())
        return alerts[pick % len(alerts)]

    def _send(self, sender: Node, body: dict[str, Any], content: Content) -> None:
        """POST a report and check the answer against the model, then record it."""
        key = body_key(body, content)
        expected = self.model.expect_post(sender, body["id"], body["revision"], key)
        resp = self.hub.request("POST", "/v1/alerts", sender.id, body)
        assert resp.status_code == expected.http, (expected, resp.status_code, resp.text)
        answer = resp.json()
        self.env.count(f"post_{expected.status or resp.status_code}")
        if expected.status is None:
            assert answer["error"] == "conflict", answer
            return
        assert answer["status"] == expected.status, (expected, answer)
        if expected.hub_id is not None:
            assert answer["hub_id"] == expected.hub_id, (expected, answer)
        if expected.status in ("created", "corroborated"):
            assert answer.get("duplicate_of") == expected.duplicate_of, (expected, answer)
            if expected.cluster_id is not None:
                assert answer["cluster_id"] == expected.cluster_id, (expected, answer)
            else:
                assert answer["cluster_id"] not in self.model.members, answer
            self.model.stored(
                Alert(
                    hub_id=answer["hub_id"],
                    alert_id=body["id"],
                    sender=sender,
                    content=content,
                    tlp=body["tlp"],
                    recipients=frozenset(body["share"]["recipients"]),
                    withhold_from=frozenset(body["share"]["withhold_from"]),
                    cluster_id=answer["cluster_id"],
                    revision=body["revision"],
                    title=body["title"],
                    severity=body["severity"],
                ),
                key,
            )
        elif expected.status == "updated":
            assert answer["revision"] == body["revision"], answer
            new_cluster = None
            if not self.model.cluster_known(content):
                # Content the model has not met: its cluster is new, named by the hub.
                got = self.hub.request("GET", f"/v1/alerts/{answer['hub_id']}", sender.id).json()
                new_cluster = got["cluster_id"]
                assert new_cluster not in self.model.members, got
            self.model.updated(
                answer["hub_id"],
                body["revision"],
                body["title"],
                body["severity"],
                key,
                new_cluster,
            )
        self._check_alert(answer["hub_id"])

    # -- rules ---------------------------------------------------------------------------
    @rule(
        sender=st.sampled_from(NODES),
        kind=st.sampled_from(("threat", "disinformation")),
        campaign=st.integers(0, CAMPAIGNS - 1),
        variant=st.integers(0, 1),
        script=st.sampled_from(("Cyrl", "Latn")),
        tlp=st.sampled_from(TLPS),
        recipients=st.sampled_from(RECIPIENTS),
        withhold=st.sampled_from(WITHHOLDS),
        severity=st.sampled_from(SEVERITIES),
    )
    def post(
        self,
        sender: Node,
        kind: str,
        campaign: int,
        variant: int,
        script: str,
        tlp: str,
        recipients: tuple[str, ...],
        withhold: tuple[str, ...],
        severity: str,
    ) -> None:
        """A node reports something, perhaps content another report already carries."""
        if tlp == "RED" and not recipients:
            recipients = ("XK",)
        content = Content(kind, campaign, variant, script if kind == "disinformation" else "Latn")
        body = alert_body(
            alert_id=f"{sender.id}-{next(self.fresh)}",
            content=content,
            tlp=tlp,
            recipients=frozenset(recipients),
            withhold_from=frozenset(withhold),
            title=f"Report of campaign {campaign}",
            severity=severity,
        )
        self._send(sender, body, content)

    @precondition(lambda self: self.model.alerts)
    @rule(
        pick=st.integers(0, 10_000),
        by=st.integers(1, len(NODES) - 1),
        other_script=st.booleans(),
        tlp=st.sampled_from(TLPS),
    )
    def corroborate(self, pick: int, by: int, other_script: bool, tlp: str) -> None:
        """Another node reports an existing report's content, perhaps in the other script."""
        earlier = self._pick(pick)
        sender = NODES[(NODE_IDS.index(earlier.sender.id) + by) % len(NODES)]
        content = earlier.content
        if other_script and content.kind == "disinformation":
            other = "Latn" if content.script == "Cyrl" else "Cyrl"
            content = dataclasses.replace(content, script=other)
        body = alert_body(
            alert_id=f"{sender.id}-{next(self.fresh)}",
            content=content,
            tlp=tlp,
            recipients=frozenset(("XK",) if tlp == "RED" else ()),
            withhold_from=frozenset(),
            title="The same, seen here too",
            severity="medium",
        )
        self._send(sender, body, content)

    @precondition(lambda self: self.model.alerts)
    @rule(
        pick=st.integers(0, 10_000),
        how=st.sampled_from(
            ("newer", "newer", "new_content", "resend", "same_revision_changed", "older")
        ),
        jump=st.integers(1, 2),
        severity=st.sampled_from(SEVERITIES),
    )
    def update(self, pick: int, how: str, jump: int, severity: str) -> None:
        """The sender sends its report again: a newer revision (perhaps with the campaign's
        other content), the same one, or an older one."""
        alert = self._pick(pick)
        content = alert.content
        if how in ("newer", "new_content"):
            revision, title = alert.revision + jump, f"Revised ({alert.revision + jump})"
            if how == "new_content":
                content = dataclasses.replace(content, variant=1 - content.variant)
        elif how == "resend":
            revision, title, severity = alert.revision, alert.title, alert.severity
        elif how == "same_revision_changed":
            revision, title = alert.revision, alert.title + " (changed in place)"
        else:
            revision, title = max(1, alert.revision - jump), alert.title
        body = alert_body(alert, revision=revision, title=title, severity=severity, content=content)
        self._send(alert.sender, body, content)

    @precondition(lambda self: self.model.alerts)
    @rule(pick=st.integers(0, 10_000), by_sender=st.booleans(), by=st.integers(1, len(NODES) - 1))
    def retract(self, pick: int, by_sender: bool, by: int) -> None:
        """The sender retracts its report (again, perhaps); another node may not."""
        alert = self._pick(pick)
        node = alert.sender
        if not by_sender:
            node = NODES[(NODE_IDS.index(alert.sender.id) + by) % len(NODES)]
        resp = self.hub.request(
            "POST", f"/v1/alerts/{alert.hub_id}/retract", node.id, {"reason": "mistaken"}
        )
        self.env.count("retractions")
        if node == alert.sender:
            assert resp.status_code == 200, resp.text
            assert resp.json() == {"hub_id": alert.hub_id, "status": "retracted"}
            self.model.retracted(alert.hub_id)
        else:
            # Not the sender: 403 if it may see the alert, 404 (never 403) if it may not.
            assert resp.status_code == (403 if may_see(alert, node) else 404), resp.text
        self._check_alert(alert.hub_id)

    @rule(owner=st.sampled_from(NODES), filter_=st.sampled_from(FILTERS))
    def subscribe(self, owner: Node, filter_: Filter) -> None:
        """A node subscribes (pull) with a filter: it gets what is logged from now on."""
        body = {"filter": filter_json(filter_), "delivery": {"type": "pull"}}
        resp = self.hub.request("POST", "/v1/subscriptions", owner.id, body)
        assert resp.status_code == 201, resp.text
        sub_id = resp.json()["id"]
        self.model.subscribe(sub_id, owner, filter_)
        self.seen_ids[sub_id] = []
        self.cursor[sub_id] = 0
        self.env.count("subscriptions")

    @precondition(lambda self: self.model.subscriptions)
    @rule(pick=st.integers(0, 10_000), limit=st.integers(1, 3))
    def pull_page(self, pick: int, limit: int) -> None:
        """The owner pulls the next page after its cursor: exactly the next events, once."""
        self._wait_for_fanout()
        subs = list(self.model.subscriptions.values())
        sub = subs[pick % len(subs)]
        done = self.cursor[sub.id]
        after = self.seen_ids[sub.id][done - 1] if done else None
        query = f"?limit={limit}" + (f"&after={after}" if after else "")
        resp = self.hub.request("GET", f"/v1/subscriptions/{sub.id}/feed{query}", sub.owner.id)
        assert resp.status_code == 200, resp.text
        page = resp.json()
        events = page["events"]
        assert self._feed_tuples(events) == [
            dataclasses.astuple(e) for e in sub.feed[done : done + limit]
        ], (sub, events)
        self._check_ids(sub, events, done)
        self.cursor[sub.id] = done + len(events)
        assert page["next"] == (events[-1]["id"] if events else after)

    # -- invariants ----------------------------------------------------------------------
    @invariant()
    def feeds_and_listings_agree(self) -> None:
        """Every feed holds exactly the model's events in order, once each, and every node's
        listing is the model's visible alerts, newest first, as they stand."""
        self.env.count("steps")
        self._wait_for_fanout()
        for sub in self.model.subscriptions.values():
            resp = self.hub.request(
                "GET", f"/v1/subscriptions/{sub.id}/feed?limit=1000", sub.owner.id
            )
            assert resp.status_code == 200, resp.text
            events = resp.json()["events"]
            assert self._feed_tuples(events) == [dataclasses.astuple(e) for e in sub.feed], (
                sub.owner.id,
                sub.filter,
                events,
                sub.feed,
            )
            self._check_ids(sub, events, 0)
        for node in NODES:
            resp = self.hub.request("GET", "/v1/alerts?limit=500", node.id)
            assert resp.status_code == 200, resp.text
            listed = resp.json()["alerts"]
            expected = self.model.visible(node)
            assert [a["hub_id"] for a in listed] == [a.hub_id for a in expected], node
            for got, alert in zip(listed, expected, strict=True):
                self._check_fields(got, alert)

    # -- checks --------------------------------------------------------------------------
    def _wait_for_fanout(self) -> None:
        wait_until(self.hub.fanned_out, 10, interval=0.005, what="fan-out to catch up")

    def _feed_tuples(self, events: list[dict[str, Any]]) -> list[tuple]:
        out = []
        for e in events:
            alert = self.model.alerts[e["hub_id"]]
            body = e["alert"]
            # The body is the stored alert as the hub last read it (at most a second old, by
            # design): some revision of this very alert, never a newer one than stored.
            assert body["hub_id"] == e["hub_id"] and body["id"] == alert.alert_id, e
            assert body["revision"] <= alert.revision, (e, alert)
            assert (body["title"], body["severity"]) == alert.titles[body["revision"]], e
            out.append((e["type"], e["hub_id"], e["cluster_id"], e["revision"]))
        return out

    def _check_ids(self, sub: Subscription, events: list[dict[str, Any]], start: int) -> None:
        """Event ids increase, and a position read before keeps its id (nothing rewritten)."""
        ids = [e["id"] for e in events]
        as_pairs = [tuple(int(p) for p in i.split("-")) for i in ids]
        assert as_pairs == sorted(set(as_pairs)), ids
        seen = self.seen_ids[sub.id]
        for offset, event_id in enumerate(ids):
            position = start + offset
            if position < len(seen):
                assert seen[position] == event_id, (position, seen, ids)
            else:
                seen.append(event_id)

    def _check_fields(self, got: dict[str, Any], alert: Alert) -> None:
        assert got["revision"] == alert.revision, (got, alert)
        assert got["status"] == alert.status, (got, alert)
        assert (got["title"], got["severity"]) == (alert.title, alert.severity), got
        assert got["cluster_id"] == alert.cluster_id, got
        assert (got["sender"], got["source_country"]) == (alert.sender.id, alert.sender.country)

    def _check_alert(self, hub_id: str) -> None:
        """GET of one alert by every node: 404 where the policy withholds it, else its state,
        the reporters the caller may see and its related alerts."""
        alert = self.model.alerts[hub_id]
        for node in NODES:
            resp = self.hub.request("GET", f"/v1/alerts/{hub_id}", node.id)
            if not may_see(alert, node):
                assert resp.status_code == 404, (node, alert, resp.text)
                continue
            assert resp.status_code == 200, (node, resp.text)
            got = resp.json()
            self._check_fields(got, alert)
            assert [r["hub_id"] for r in got["reporters"]] == self.model.reporters(alert, node)
            assert got["related"] == self.model.related(alert, node), (node.id, got, alert)


@pytest.mark.timeout(900)
def test_hub_agrees_with_the_model(env: Env) -> None:
    """Random sequences of posts, corroborations, updates, retractions, subscriptions and pulls
    leave the hub's stored alerts, listings and feeds exactly as the model says."""
    started = time.monotonic()
    run_state_machine_as_test(
        lambda: AlertMachine(env),
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            derandomize=not RANDOM,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    print(f"state machine: {env.tally} in {time.monotonic() - started:.1f} s")
