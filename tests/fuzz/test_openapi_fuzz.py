"""schemathesis against schemas/openapi.yaml: a real hub process on a real Redis answers every
generated request (valid and invalid, as the operator, a node, a partner, no token and a wrong
one) with no 5xx, a status the description lists for the operation, a body that matches the
described schema and the described content type.

The budget is small and seeded so that CI runs the same cases every time:
ALERTHUB_FUZZ_EXAMPLES (default 50) is the fuzzing phase's cases per operation (the examples and
coverage phases add theirs),
ALERTHUB_FUZZ_SEED (default 20261125) the seed. A longer local run:
`ALERTHUB_FUZZ_EXAMPLES=200 .venv/bin/python -m pytest tests/fuzz/test_openapi_fuzz.py`.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis import checks
from schemathesis.config import SchemathesisConfig

from hub.interop.stix_parts import report_id
from hub.store.embedded import RedisServer, free_port, start_redis_server
from tests.conftest import OPERATOR_TOKEN, unique_threat
from tests.hubproc import HubProcess

SPEC = Path(__file__).resolve().parents[2] / "schemas" / "openapi.yaml"
EXAMPLES = int(os.environ.get("ALERTHUB_FUZZ_EXAMPLES", "50"))
SEED = int(os.environ.get("ALERTHUB_FUZZ_SEED", "20261125"))
REQUEST_TIMEOUT_S = 10.0

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
]


def fuzz_config() -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "generation": {"max-examples": EXAMPLES, "deterministic": True, "database": "none"},
        }
    )


schema = schemathesis.openapi.from_path(SPEC, config=fuzz_config())

# Who sends the request: each case goes out under one of these.
IDENTITIES = ("operator", "publisher", "partner", "none", "wrong")


@dataclass
class FuzzHub:
    """The hub under test, the tokens of its nodes, and ids of things that exist in it."""

    base_url: str
    tokens: dict[str, str]
    hub_ids: list[str] = field(default_factory=list)
    subscription_ids: list[str] = field(default_factory=list)
    session: requests.Session = field(default_factory=requests.Session)
    fresh: Iterator[int] = field(default_factory=itertools.count)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)

    def auth(self, who: str) -> dict[str, str]:
        if who == "none":
            return {}
        token = "ah_not-a-token-of-this-hub" if who == "wrong" else self.tokens[who]
        return {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, who: str, body: Any = None) -> Any:
        resp = self.session.request(
            method, self.base_url + path, json=body, headers=self.auth(who), timeout=10
        )
        assert resp.status_code < 300, (method, path, resp.status_code, resp.text)
        return resp.json() if resp.content else None

    def add_node(self, node_id: str, country: str, kind: str, roles: list[str]) -> str:
        body = {
            "id": node_id,
            "name": f"Fuzz node {node_id}",
            "country": country,
            "kind": kind,
            "roles": roles,
        }
        return self.call("POST", "/v1/nodes", "operator", body)["token"]

    def new_alert(self) -> str:
        alert = unique_threat(f"fz-alert-{next(self.fresh)}")
        return self.call("POST", "/v1/alerts", "publisher", alert)["hub_id"]

    def new_subscription(self, who: str = "partner") -> str:
        body = {"filter": {}, "delivery": {"type": "pull"}}
        return self.call("POST", "/v1/subscriptions", who, body)["id"]


@pytest.fixture(scope="module")
def fuzz_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzHub]:
    """One hub process on its own Redis for the whole module, with a publisher, a partner and
    a few alerts and pull subscriptions for the fuzzed requests to find."""
    tmp = tmp_path_factory.mktemp("fuzz")
    redis_server: RedisServer = start_redis_server(tmp / "redis", port=free_port())
    env = {
        "ALERTHUB_REDIS_URL": redis_server.url,
        "ALERTHUB_BOOTSTRAP_TOKEN": OPERATOR_TOKEN,
        "ALERTHUB_RATE_LIMIT_PER_MINUTE": "1000000",
        "ALERTHUB_WEBHOOK_TIMEOUT_S": "1",
        "ALERTHUB_LOG_LEVEL": "warning",
        "ALERTHUB_DATA_DIR": str(tmp / "data"),
    }
    process = HubProcess(env=env, cwd=tmp).start()
    try:
        hub = FuzzHub(process.base_url, {"operator": OPERATOR_TOKEN})
        hub.tokens["publisher"] = hub.add_node("fz-rs-cert", "RS", "government", ["publish"])
        hub.tokens["partner"] = hub.add_node(
            "fz-factcheck", "BA", "civil-society", ["publish", "subscribe", "fact-check"]
        )
        hub.hub_ids = [hub.new_alert() for _ in range(3)]
        hub.subscription_ids = [hub.new_subscription() for _ in range(2)]
        yield hub
        by_class = Counter(f"{status // 100}xx" for (_, status) in hub.statuses.elements())
        total = hub.statuses.total()
        print(f"schemathesis: {total} requests checked, {dict(sorted(by_class.items()))}")
    finally:
        stopped = process.stop()
        redis_server.stop()
    assert stopped == 0, process.output()[-4000:]
    assert "Traceback" not in process.output(), process.output()[-4000:]


def use_known_ids(case: Any, hub: FuzzHub, who: str = "partner") -> None:
    """Point the case at things that exist, so that it gets past 404 to the handler's logic.
    Destructive operations get a thing of their own; the endless SSE stream keeps its random id."""
    params = case.path_parameters or {}
    op = f"{case.method.upper()} {case.operation.path}"
    if op.endswith("/events"):
        return
    if "hub_id" in params:
        params["hub_id"] = hub.new_alert() if "retract" in op else hub.hub_ids[0]
    if "subscription_id" in params:
        fresh = op.startswith("DELETE")
        params["subscription_id"] = hub.new_subscription() if fresh else hub.subscription_ids[0]
    if "collection_id" in params:  # TAXII: `visible`, or the partner's own pull subscription
        owned = who == "partner"
        params["collection_id"] = hub.subscription_ids[0] if owned else "visible"
    if "object_id" in params:
        params["object_id"] = report_id(hub.hub_ids[0])
    if "node_id" in params:
        node_id = f"fz-gone-{next(hub.fresh)}"
        hub.add_node(node_id, "ME", "government", ["subscribe"])
        params["node_id"] = node_id


@pytest.mark.timeout(600)
@schema.given(who=st.sampled_from(IDENTITIES), known=st.booleans())
@schema.parametrize()
def test_every_answer_matches_the_description(
    case: Any, who: str, known: bool, fuzz_hub: FuzzHub
) -> None:
    """No generated request gets a 5xx, an undescribed status, a body off its schema or an
    undescribed content type, whoever sends it."""
    # Changed in the case itself, so that schemathesis judges what is sent: a negative case
    # whose only fault was a bad token or id that was put right here is then a positive one.
    if known:
        use_known_ids(case, fuzz_hub, who)
    case.headers = {**(case.headers or {}), **fuzz_hub.auth(who)}
    if who == "none":
        case.headers.pop("Authorization", None)
    response = case.call_and_validate(
        base_url=fuzz_hub.base_url,
        session=fuzz_hub.session,
        checks=CHECKS,
        timeout=REQUEST_TIMEOUT_S,
    )
    fuzz_hub.statuses[(case.operation.label, response.status_code)] += 1


# 2**64 in the sequence part: the EventId pattern allows 20 digits, a Redis stream id does not.
OUT_OF_RANGE_EVENT_ID = "638-18446744073709551616"


@pytest.mark.timeout(30)
def test_event_id_beyond_a_stream_id_is_422_on_every_path(fuzz_hub: FuzzHub) -> None:
    """A cursor that matches the event id form but is past what Redis stream ids hold is a
    422 on pull, SSE and dead-letter replay, not a 500 (found by the fuzzer, seed 3)."""
    sub_id = fuzz_hub.subscription_ids[0]
    base = f"{fuzz_hub.base_url}/v1/subscriptions/{sub_id}"
    auth = fuzz_hub.auth("partner")
    calls = [
        ("GET", f"{base}/feed?after={OUT_OF_RANGE_EVENT_ID}", auth, None),
        ("GET", f"{base}/events?after={OUT_OF_RANGE_EVENT_ID}", auth, None),
        ("GET", f"{base}/events", {**auth, "Last-Event-ID": OUT_OF_RANGE_EVENT_ID}, None),
        ("POST", f"{base}/dead-letters/replay", auth, {"event_ids": [OUT_OF_RANGE_EVENT_ID]}),
    ]
    for method, url, headers, body in calls:
        resp = fuzz_hub.session.request(method, url, headers=headers, json=body, timeout=5)
        assert resp.status_code == 422, (method, url, resp.status_code, resp.text)
        assert resp.json()["error"] == "validation_failed"


@pytest.mark.timeout(30)
def test_a_query_parameter_given_twice_is_422(fuzz_hub: FuzzHub) -> None:
    """A parameter given more than once is refused naming it, rather than the hub quietly
    taking the first value and ignoring an invalid second (found by the fuzzer:
    `?since=&since=true` listed alerts)."""
    sub = f"/v1/subscriptions/{fuzz_hub.subscription_ids[0]}"
    calls = [
        ("partner", "/v1/alerts?since=&since=true", "/since"),
        ("partner", "/v1/alerts?kind=threat&kind=rumour", "/kind"),
        ("partner", f"{sub}/feed?limit=5&limit=none", "/limit"),
        ("partner", f"{sub}/events?after=&after=x", "/after"),
        ("operator", "/v1/reports/sharing?format=json&format=xml", "/format"),
    ]
    for who, path, pointer in calls:
        resp = fuzz_hub.session.get(fuzz_hub.base_url + path, headers=fuzz_hub.auth(who), timeout=5)
        assert resp.status_code == 422, (path, resp.status_code, resp.text)
        assert [d["pointer"] for d in resp.json()["details"]] == [pointer], resp.text
