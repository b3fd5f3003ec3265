"""Who may call what, for every route the app serves: the cases are generated from the app's route
table, so a route added without a rule in ACCESS fails here, by name.

Each route is called by every kind of caller (no token, malformed headers, an unknown token, a
wrong secret, a revoked token, nodes with and without the route's role, the owner, the operator)
with path parameters that name real objects, and each answer's status and error body must be the
one API.md gives: 401 for anyone the hub cannot identify, 403 for a node without the role, 404
(never 403) for a subscription or alert the caller may not see.

The rules live here, not in the hub: the hub checks roles inside each handler (`caller(request,
role)`), and this table is the independent statement of what those checks must add up to.
"""

from __future__ import annotations

import itertools
import secrets
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from hub.app import create_app
from hub.ingest.validation import SchemaSet
from hub.interop.misp import ulid_to_uuid
from hub.interop.stix_parts import report_id
from hub.settings import Settings
from tests.conftest import OPERATOR_TOKEN, Api, unique_threat
from tests.security.routes import served_routes
from tests.security.tally import refused

# -- the callers ------------------------------------------------------------------------------

# Callers the hub cannot identify: each must get 401 on every route that is not public.
UNIDENTIFIED = ("anonymous", "empty_bearer", "wrong_scheme", "garbage", "unknown", "wrong_secret",
                "revoked")  # fmt: skip
# Nodes, with the roles each holds. "owner" owns the target subscription and sent the target
# alert; the others hold the roles their names say.
ROLES: dict[str, frozenset[str]] = {
    "publisher": frozenset({"publish"}),
    "subscriber": frozenset({"subscribe"}),
    "owner": frozenset({"publish", "subscribe", "fact-check"}),
    "operator": frozenset({"operator"}),  # the bootstrap operator (ALERTHUB_BOOTSTRAP_TOKEN)
    "operator_node": frozenset({"operator"}),  # an operator node created through the API
}
CALLERS = (*UNIDENTIFIED, *ROLES)
# The WWW-Authenticate challenge each unidentified caller gets (RFC 6750, section 3): no error
# code without a bearer token, invalid_request for an empty one, invalid_token for the rest.
CHALLENGE_ERROR = {"anonymous": None, "wrong_scheme": None, "empty_bearer": "invalid_request"}
NODE_IDS = {"publisher": "al-pub", "subscriber": "fc-sub", "owner": "rs-owner",
            "operator_node": "ops-desk", "revoked": "gone-node"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Rule:
    """Who may call a route, and its success status. `who` is one of:
    public: anyone, token or not;
    node: any node with a live token;
    role:<name>: a node holding that role;
    owner: the owner of the subscription in the path, or an operator; anyone else gets 404;
    owner_only: the owner of the subscription in the path; an operator gets 403, others 404;
    owner_alone: the owner of the subscription in the path; everyone else, the operator too,
        gets 404 (a TAXII collection is its owner's own);
    sender: a publishing node that sent the alert in the path (others who may see it: 403);
    visible: any node the alert's sharing lets see it; anyone else gets 404."""

    who: str
    ok: int = 200
    hidden_from: frozenset[str] = frozenset()  # for `visible`: callers the alert is withheld from

    def expect(self, caller: str) -> tuple[int, str | None]:
        """(status, error code or None for success) for `caller`."""
        if self.who == "public":
            return self.ok, None
        if caller in UNIDENTIFIED:
            return 401, "unauthenticated"
        roles = ROLES[caller]
        if self.who == "node":
            return self.ok, None
        if self.who.startswith("role:"):
            return (self.ok, None) if self.who[5:] in roles else (403, "forbidden")
        if self.who == "owner":
            if caller == "owner" or "operator" in roles:
                return self.ok, None
            return 404, "not_found"
        if self.who == "owner_only":
            if caller == "owner":
                return self.ok, None
            return (403, "forbidden") if "operator" in roles else (404, "not_found")
        if self.who == "owner_alone":
            return (self.ok, None) if caller == "owner" else (404, "not_found")
        if self.who == "sender":
            return (self.ok, None) if caller == "owner" else (403, "forbidden")
        if self.who == "visible":
            return (404, "not_found") if caller in self.hidden_from else (self.ok, None)
        raise AssertionError(f"unknown rule {self.who}")


# -- the world each route is called in ---------------------------------------------------------


@dataclass
class World:
    api: Api
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    counter: itertools.count = field(default_factory=itertools.count)

    @classmethod
    async def build(cls, api: Api) -> World:
        world = cls(api)
        await api.add_node(NODE_IDS["publisher"], "AL", roles=("publish",))
        await api.add_node(NODE_IDS["subscriber"], "BA", kind="civil-society", roles=("subscribe",))
        await api.add_node(NODE_IDS["owner"], "RS", roles=("publish", "subscribe", "fact-check"))
        await api.add_node(NODE_IDS["operator_node"], "ME", roles=("operator",))
        gone = await api.add_node(NODE_IDS["revoked"], "MK", roles=("publish", "subscribe"))
        # Used once, so that its profile sits in the hub's cache when it is revoked.
        assert (await api.client.get("/v1/alerts", headers=api.auth(NODE_IDS["revoked"]))).ok
        resp = await api.client.delete(
            f"/v1/nodes/{NODE_IDS['revoked']}", headers=api.auth("operator")
        )
        assert resp.status == 204
        owner_token = api.tokens[NODE_IDS["owner"]]
        key_id = owner_token.split(".", 1)[0]
        unknown = f"ah_{secrets.token_hex(8)}.{secrets.token_urlsafe(32)}"
        world.headers = {
            "anonymous": {},
            "empty_bearer": {"Authorization": "Bearer "},
            "wrong_scheme": {"Authorization": f"Basic {owner_token}"},
            "garbage": {"Authorization": "Bearer not-a-hub-token"},
            "unknown": {"Authorization": f"Bearer {unknown}"},
            "wrong_secret": {"Authorization": f"Bearer {key_id}.{secrets.token_urlsafe(32)}"},
            "revoked": {"Authorization": f"Bearer {gone}"},
            "operator": {"Authorization": f"Bearer {OPERATOR_TOKEN}"},
            **{kind: api.auth(NODE_IDS[kind]) for kind in ("publisher", "subscriber", "owner",
                                                          "operator_node")},
        }  # fmt: skip
        return world

    def fresh(self, stem: str) -> str:
        return f"{stem}-{next(self.counter)}"

    async def alert(self, **changes: Any) -> str:
        """A new alert sent by the owner node; its hub id."""
        status, body = await self.api.post(
            NODE_IDS["owner"], unique_threat(self.fresh("target"), **changes)
        )
        assert status == 201, body
        return body["hub_id"]

    async def subscription(self) -> str:
        return (await self.api.subscribe(NODE_IDS["owner"]))["id"]

    async def node(self) -> str:
        node_id = self.fresh("victim")
        await self.api.add_node(node_id, "XK", roles=("publish",))
        return node_id


# -- how to make a request that would succeed, for each route ----------------------------------

Request = tuple[dict[str, str], Any]  # (path parameters, JSON body or None)
UNKNOWN_TOKEN = "01M95H9EPPBA609FJCHZ4P67CF.ee995b33a6c172ae5848e699f5656d427a46"
Maker = Callable[[World], Awaitable[Request]]


async def nothing(world: World) -> Request:
    return {}, None


async def new_alert_body(world: World) -> Request:
    return {}, unique_threat(world.fresh("posted"))


async def new_batch_body(world: World) -> Request:
    return {}, {"alerts": [unique_threat(world.fresh("batched"))]}


async def new_node_body(world: World) -> Request:
    node = {"id": world.fresh("new-node"), "name": "New", "country": "AL", "kind": "government",
            "roles": ["publish"]}  # fmt: skip
    return {}, node


async def a_node_to_revoke(world: World) -> Request:
    return {"node_id": await world.node()}, None


async def pull_subscription_body(world: World) -> Request:
    return {}, {"delivery": {"type": "pull"}}


async def a_subscription(world: World) -> Request:
    return {"subscription_id": await world.subscription()}, None


async def a_subscription_to_pause(world: World) -> Request:
    return {"subscription_id": await world.subscription()}, {"status": "paused"}


async def a_green_alert(world: World) -> Request:
    return {"hub_id": await world.alert()}, None


async def an_alert_withheld_from_al(world: World) -> Request:
    return {"hub_id": await world.alert(share={"withhold_from": ["AL"]})}, None


async def an_alert_to_retract(world: World) -> Request:
    return {"hub_id": await world.alert()}, {"reason": "mistaken"}


async def a_subscription_and_alert(world: World) -> Request:
    return {"subscription_id": await world.subscription(), "hub_id": await world.alert()}, None


def fact_check(fc_id: str) -> dict[str, Any]:
    return {"id": fc_id, "claim_reviewed": "A claim", "url": "https://factcheck.example/a",
            "rating": {"value": 1, "alternate_name": "False"}, "published_at":
            "2026-11-21T09:30:00Z", "language": "sr", "summary": "It is false."}  # fmt: skip


async def a_fact_check_to_post(world: World) -> Request:
    return {"hub_id": await world.alert()}, fact_check(world.fresh("fc"))


async def a_fact_check_to_retract(world: World) -> Request:
    hub_id = await world.alert()
    resp = await world.api.client.post(
        f"/v1/alerts/{hub_id}/fact-checks",
        json=fact_check(world.fresh("fc")),
        headers=world.api.auth(NODE_IDS["owner"]),
    )
    assert resp.status == 201, await resp.text()
    return {"hub_id": hub_id, "fact_check_id": (await resp.json())["fact_check_id"]}, None


async def a_cluster_withheld_from_al(world: World) -> Request:
    status, body = await world.api.post(
        NODE_IDS["owner"],
        unique_threat(world.fresh("clustered"), share={"withhold_from": ["AL"]}),
    )
    assert status == 201, body
    return {"cluster_id": body["cluster_id"]}, None


async def a_misp_event(world: World) -> Request:
    """The owner's subscription and the MISP event uuid of an alert its feed holds."""
    sub_id = await world.subscription()
    hub_id = await world.alert()
    owner = NODE_IDS["owner"]
    events = await world.api.wait_for_feed(owner, sub_id, 1, last=hub_id)
    assert events and events[-1]["hub_id"] == hub_id
    return {"subscription_id": sub_id, "event_uuid": ulid_to_uuid(hub_id)}, None


async def a_misp_event_to_import(world: World) -> Request:
    domain = f"{world.fresh('misp')}.example"
    event = {"uuid": str(uuid.uuid4()), "info": "An event", "date": "2026-11-21",
             "distribution": "1", "Tag": [{"name": "tlp:green"}],
             "Attribute": [{"type": "domain", "value": domain}]}  # fmt: skip
    return {}, {"Event": event}


async def a_taxii_collection(world: World) -> Request:
    """A pull subscription of the owner, which is one of its TAXII collections."""
    return {"collection_id": await world.subscription()}, None


async def a_stix_report_withheld_from_al(world: World) -> Request:
    hub_id = await world.alert(share={"withhold_from": ["AL"]})
    return {"collection_id": "visible", "object_id": report_id(hub_id)}, None


def fixed(**params: str) -> Maker:
    async def make(world: World) -> Request:
        return params, None

    return make


ACCESS: dict[tuple[str, str], tuple[Rule, Maker]] = {
    ("GET", "/healthz"): (Rule("public"), nothing),
    ("GET", "/readyz"): (Rule("public"), nothing),
    ("GET", "/v1/schemas"): (Rule("public"), nothing),
    ("GET", "/v1/schemas/{name}"): (Rule("public"), fixed(name="alert")),
    ("GET", "/status"): (Rule("public"), nothing),
    ("GET", "/status/{name}"): (Rule("public"), fixed(name="status.js")),
    ("GET", "/metrics"): (Rule("role:operator"), nothing),
    ("GET", "/v1/status"): (Rule("role:operator"), nothing),
    ("GET", "/v1/reports/sharing"): (Rule("role:operator"), nothing),
    ("POST", "/v1/nodes"): (Rule("role:operator", 201), new_node_body),
    ("GET", "/v1/nodes"): (Rule("role:operator"), nothing),
    ("DELETE", "/v1/nodes/{node_id}"): (Rule("role:operator", 204), a_node_to_revoke),
    ("POST", "/v1/alerts"): (Rule("role:publish", 201), new_alert_body),
    ("POST", "/v1/alerts/batch"): (Rule("role:publish"), new_batch_body),
    ("GET", "/v1/alerts"): (Rule("node"), nothing),
    ("GET", "/v1/alerts/{hub_id}"): (
        Rule("visible", hidden_from=frozenset({"publisher"})),
        an_alert_withheld_from_al,
    ),
    ("POST", "/v1/alerts/{hub_id}/retract"): (Rule("sender"), an_alert_to_retract),
    ("POST", "/v1/subscriptions"): (Rule("role:subscribe", 201), pull_subscription_body),
    ("GET", "/v1/subscriptions"): (Rule("node"), nothing),
    ("GET", "/v1/subscriptions/{subscription_id}"): (Rule("owner"), a_subscription),
    ("PATCH", "/v1/subscriptions/{subscription_id}"): (Rule("owner"), a_subscription_to_pause),
    ("DELETE", "/v1/subscriptions/{subscription_id}"): (Rule("owner", 204), a_subscription),
    ("GET", "/v1/subscriptions/{subscription_id}/feed"): (Rule("owner"), a_subscription),
    ("GET", "/v1/subscriptions/{subscription_id}/events"): (Rule("owner"), a_subscription),
    ("GET", "/v1/subscriptions/{subscription_id}/dead-letters"): (Rule("owner"), a_subscription),
    ("POST", "/v1/subscriptions/{subscription_id}/dead-letters/replay"): (
        Rule("owner"),
        a_subscription,
    ),
    ("GET", "/v1/subscriptions/{subscription_id}/explain/{hub_id}"): (
        Rule("role:operator"),
        a_subscription_and_alert,
    ),
    # Fact-checks: the fact-check role, on an alert the caller may see (the owner sent it).
    ("POST", "/v1/alerts/{hub_id}/fact-checks"): (
        Rule("role:fact-check", 201),
        a_fact_check_to_post,
    ),
    ("POST", "/v1/alerts/{hub_id}/fact-checks/{fact_check_id}/retract"): (
        Rule("role:fact-check"),
        a_fact_check_to_retract,
    ),
    ("GET", "/v1/alerts/{hub_id}/claimreview"): (
        Rule("visible", hidden_from=frozenset({"publisher"})),
        an_alert_withheld_from_al,
    ),
    ("GET", "/v1/clusters"): (Rule("node"), nothing),
    ("GET", "/v1/clusters/{cluster_id}"): (
        Rule("visible", hidden_from=frozenset({"publisher"})),
        a_cluster_withheld_from_al,
    ),
    # Atom: a bearer as for the pull feed (the feed key is tested in tests/factcheck); only the
    # owner makes a key, which reads with the owner's eyes; the operator may revoke it.
    ("GET", "/v1/subscriptions/{subscription_id}/feed.atom"): (Rule("owner"), a_subscription),
    ("POST", "/v1/subscriptions/{subscription_id}/feed-key"): (
        Rule("owner_only", 201),
        a_subscription,
    ),
    ("DELETE", "/v1/subscriptions/{subscription_id}/feed-key"): (
        Rule("owner", 204),
        a_subscription,
    ),
    # MISP: the feed reads as the pull feed does (MISP's bare Authorization header is tested
    # in tests/interop); the import as the batch route.
    ("GET", "/v1/subscriptions/{subscription_id}/misp/manifest.json"): (
        Rule("owner"),
        a_subscription,
    ),
    ("GET", "/v1/subscriptions/{subscription_id}/misp/hashes.csv"): (
        Rule("owner"),
        a_subscription,
    ),
    ("GET", "/v1/subscriptions/{subscription_id}/misp/{event_uuid}.json"): (
        Rule("owner"),
        a_misp_event,
    ),
    ("POST", "/v1/imports/misp"): (Rule("role:publish"), a_misp_event_to_import),
    # E-mail links: the token in the path is the capability, whoever calls; an unknown one is
    # 404 to everyone (the valid ones are followed in tests/delivery/test_email.py).
    ("GET", "/v1/email/confirm/{token}"): (Rule("public", 404), fixed(token=UNKNOWN_TOKEN)),
    ("POST", "/v1/email/confirm/{token}"): (Rule("public", 404), fixed(token=UNKNOWN_TOKEN)),
    ("GET", "/v1/email/unsubscribe/{token}"): (Rule("public", 404), fixed(token=UNKNOWN_TOKEN)),
    ("POST", "/v1/email/unsubscribe/{token}"): (Rule("public", 404), fixed(token=UNKNOWN_TOKEN)),
    # TAXII 2.1: any node reads the API and its `visible` collection; a subscription collection
    # is its owner's alone; an object is there for those who may see its alert.
    ("GET", "/taxii2/"): (Rule("node"), nothing),
    ("GET", "/taxii2/alerthub/"): (Rule("node"), nothing),
    ("GET", "/taxii2/alerthub/collections/"): (Rule("node"), nothing),
    ("GET", "/taxii2/alerthub/collections/{collection_id}/"): (
        Rule("owner_alone"),
        a_taxii_collection,
    ),
    ("GET", "/taxii2/alerthub/collections/{collection_id}/objects/"): (
        Rule("owner_alone"),
        a_taxii_collection,
    ),
    ("GET", "/taxii2/alerthub/collections/{collection_id}/manifest/"): (
        Rule("owner_alone"),
        a_taxii_collection,
    ),
    ("GET", "/taxii2/alerthub/collections/{collection_id}/objects/{object_id}/"): (
        Rule("visible", hidden_from=frozenset({"publisher"})),
        a_stix_report_withheld_from_al,
    ),
    ("GET", "/taxii2/alerthub/collections/{collection_id}/objects/{object_id}/versions/"): (
        Rule("visible", hidden_from=frozenset({"publisher"})),
        a_stix_report_withheld_from_al,
    ),
}


ROUTES = served_routes()


def test_every_rule_names_a_served_route() -> None:
    """A rule for a route the app no longer serves is stale: the table and the app must agree."""
    stale = sorted(set(ACCESS) - set(ROUTES))
    assert not stale, f"ACCESS has rules for routes the app does not serve: {stale}"


async def call(world: World, method: str, pattern: str, caller: str, make: Maker):
    params, body = await make(world)
    path = pattern.format(**params)
    kwargs: dict[str, Any] = {"headers": dict(world.headers[caller])}
    if body is not None:
        kwargs["json"] = body
    return await world.api.client.request(method, path, **kwargs)


@pytest.mark.parametrize(("method", "pattern"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
async def test_each_caller_gets_what_the_rule_says(api: Api, method: str, pattern: str) -> None:
    """Every route answers every kind of caller with the status and error body its rule gives."""
    entry = ACCESS.get((method, pattern))
    if entry is None:
        pytest.fail(
            f"route {method} {pattern} has no access rule: add it to ACCESS in "
            "tests/security/test_route_auth.py, saying who may call it"
        )
    rule, make = entry
    world = await World.build(api)
    wrong = []
    for caller in CALLERS:
        status, code = rule.expect(caller)
        resp = await call(world, method, pattern, caller, make)
        try:
            if code is None:
                if resp.status != status:
                    wrong.append((caller, status, resp.status, await resp.text()))
                continue
            refused(f"auth: {code}")
            body = await error_body(resp, pattern)
            if resp.status != status or body is None or body.get("error") != code:
                wrong.append((caller, status, resp.status, await resp.text()))
            elif set(body) != {"error", "message"} or not body["message"]:
                wrong.append((caller, status, resp.status, f"error body shape: {body}"))
            elif status == 401 and not challenges(resp.headers, caller):
                challenge = resp.headers.get("WWW-Authenticate")
                wrong.append((caller, status, resp.status, f"WWW-Authenticate: {challenge}"))
        finally:
            resp.close()
    assert not wrong, "\n".join(
        f"{method} {pattern} as {c}: expected {e}, got {g}: {t[:200]}" for c, e, g, t in wrong
    )


async def error_body(resp: Any, pattern: str) -> dict[str, Any] | None:
    """The hub's error body; on the TAXII routes, read from the TAXII error message, which
    must carry the same code and the HTTP status."""
    if not pattern.startswith("/taxii2/"):
        return await resp.json() if resp.content_type == "application/json" else None
    if resp.headers.get("Content-Type") != "application/taxii+json;version=2.1":
        return None
    message = await resp.json(content_type=None)
    if message.get("http_status") != str(resp.status) or not message.get("title"):
        return None
    return {"error": message.get("error_code"), "message": message.get("description")}


def challenges(headers: Mapping[str, str], caller: str) -> bool:
    """Whether a 401's headers carry the Bearer challenge `caller` should get."""
    value = headers.get("WWW-Authenticate", "")
    error = CHALLENGE_ERROR.get(caller, "invalid_token")
    if not value.startswith('Bearer realm="alerthub"'):
        return False
    return (f'error="{error}"' in value) if error else ("error=" not in value)


async def test_a_route_missing_from_the_table_is_named(api: Api) -> None:
    """The check the parametrised test makes fails for a route without a rule, naming it."""
    assert ("GET", "/v1/made-up") not in ACCESS
    with pytest.raises(pytest.fail.Exception, match=r"route GET /v1/made-up has no access rule"):
        await test_each_caller_gets_what_the_rule_says(api, "GET", "/v1/made-up")


async def test_lowercase_scheme_and_bootstrap_token_variants(api: Api) -> None:
    """The scheme name is case-insensitive (RFC 9110); the bootstrap token must match exactly:
    a prefix, a longer token or another case is 401."""
    await api.add_node("al-pub", "AL", roles=("publish",))
    resp = await api.client.get(
        "/v1/alerts", headers={"Authorization": f"bearer {api.tokens['al-pub']}"}
    )
    assert resp.status == 200
    for token in (OPERATOR_TOKEN[:-1], OPERATOR_TOKEN + "0", OPERATOR_TOKEN.upper(),
                  f"{OPERATOR_TOKEN} {OPERATOR_TOKEN}", f"x{OPERATOR_TOKEN}"):  # fmt: skip
        resp = await api.client.get("/v1/status", headers={"Authorization": f"Bearer {token}"})
        refused("auth: unauthenticated")
        assert resp.status == 401, token
        assert (await resp.json())["error"] == "unauthenticated"


async def test_another_hub_with_other_tokens_does_not_accept_these(
    aiohttp_client: Any, api: Api, settings: Settings, schema_set: SchemaSet
) -> None:
    """A token is bound to the hub's store: a second hub on another key prefix (another hub
    sharing the Redis server) answers 401 to the first hub's node token."""
    token = await api.add_node("al-pub", "AL", roles=("publish",))
    other = Settings(
        redis_url=settings.redis_url,
        data_dir=settings.data_dir,
        bootstrap_token="another-operator-token",
        key_prefix="otherhub",
    )
    client = await aiohttp_client(create_app(other, schema_set))
    resp = await client.get("/v1/alerts", headers={"Authorization": f"Bearer {token}"})
    refused("auth: unauthenticated")
    assert resp.status == 401
    resp = await client.get("/v1/status", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
    refused("auth: unauthenticated")
    assert resp.status == 401
