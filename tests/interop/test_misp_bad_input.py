"""Bad input on POST /v1/imports/misp: the bad-input corpus of POST /v1/alerts, bare and wrapped
as a MISP event, and generated MISP-shaped nonsense. Each body gets a 4xx or per-event
rejections that point into it, never a 5xx, and nothing is stored."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.store.keys import Keys
from tests.api.test_bad_input import CASES
from tests.conftest import Api

WHOLE = (400, 413, 415)  # refused before any event is looked at


async def post(api: Api, body: bytes, content_type: str) -> tuple[int, Any]:
    headers = {**api.auth("al-cert")}
    if content_type:
        headers["Content-Type"] = content_type
    resp = await api.client.post(
        "/v1/imports/misp", data=body, headers=headers, skip_auto_headers=["Content-Type"]
    )
    return resp.status, await resp.json()


def assert_refused(status: int, answer: Any) -> None:
    """A whole-body 4xx, or a 200 whose every event is rejected with pointed details."""
    assert status < 500, answer
    if status != 200:
        assert 400 <= status < 500 and answer["error"] and answer["message"], answer
        return
    for result in answer["results"]:
        assert result["status"] == "rejected", result
        error = result["error"]
        assert error["message"] and "Traceback" not in error["message"]
        for detail in error.get("details", []):
            assert detail["pointer"].startswith(result["pointer"]), (detail, result)


def _is_json(body: bytes) -> bool:
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return True


def nothing_stored(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.zcard(Keys().recent) == 0
    finally:
        client.close()


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [case[1:4] for case in CASES],
    ids=[case[0] for case in CASES],
)
async def test_the_bad_input_corpus_is_refused(
    api: Api, redis_url: str, body: bytes, content_type: str, status: int
) -> None:
    """Each corpus body, as posted and inside {"Event": ...}: the same 400/413/415 as on
    POST /v1/alerts where the body itself is at fault, else every event rejected; the hub
    stores nothing and still serves."""
    await api.add_node("al-cert", "AL")
    wrapped = b'{"Event": ' + body + b"}" if body.strip() else body
    for sent in (body, wrapped):
        got, answer = await post(api, sent, content_type)
        # This route's body limit is the batch route's: a body over the alert's is no fault here.
        expected = status if status != 413 or len(sent) > 4 * 1024 * 1024 else 200
        if expected in WHOLE and (sent is body or status != 400 or not _is_json(body)):
            # A list is a body this route takes (of events): an empty one has none to import.
            assert got == (422 if sent == b"[]" else expected), answer
        assert_refused(got, answer)
    nothing_stored(redis_url)
    event = {"Event": {"uuid": "5b8c1f7e-3d2a-4f6b-9c1e-7a2b3c4d5e6f", "info": "After",
             "date": "2026-11-21", "distribution": "1", "Tag": [{"name": "tlp:green"}],
             "Attribute": [{"type": "domain", "value": "after.example"}]}}  # fmt: skip
    got, answer = await post(api, orjson.dumps(event), "application/json")
    assert (got, answer["results"][0]["status"]) == (200, "created")


json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
attribute = st.fixed_dictionaries(
    {"type": st.sampled_from(["ip-dst", "domain", "url", "md5", "text", "link"]) | json_leaf,
     "value": json_leaf},
    optional={"Tag": st.lists(st.fixed_dictionaries({"name": json_leaf}), max_size=2),
              "deleted": json_leaf},
)  # fmt: skip
event = st.fixed_dictionaries(
    {},
    optional={"uuid": st.uuids().map(str) | json_leaf, "info": json_leaf,
              "date": st.sampled_from(["2026-11-21", "21/11/2026"]) | json_leaf,
              "timestamp": json_leaf, "distribution": json_leaf, "threat_level_id": json_leaf,
              "Tag": st.lists(st.fixed_dictionaries({"name": st.sampled_from(
                  ["tlp:red", "tlp:amber", "tlp:unknown", 'alerthub:kind="x"',
                   'alerthub:confidence="high"', 'alerthub:valid-until="never"']) | json_leaf}),
                  max_size=3) | json_value,
              "Attribute": st.lists(attribute, max_size=3) | json_value,
              "Object": st.lists(st.fixed_dictionaries({"Attribute": st.lists(attribute)}),
                                 max_size=2) | json_value},
)  # fmt: skip
body = st.one_of(
    event.map(lambda e: {"Event": e}),
    st.lists(event.map(lambda e: {"Event": e}), max_size=3),
    st.fixed_dictionaries({"response": st.lists(event | json_value, max_size=3)}),
    json_value,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
@given(body=body)
async def test_misp_shaped_nonsense_gets_a_clear_answer(api: Api, body: Any) -> None:
    """Generated MISP-shaped bodies: never a 5xx; what is refused points into the body."""
    if not api.tokens.get("al-cert"):
        await api.add_node("al-cert", "AL")
    status, answer = await post(api, orjson.dumps(body), "application/json")
    assert status < 500, answer
    if status == 200:
        for result in answer["results"]:
            if result["status"] == "rejected":
                for detail in result["error"].get("details", []):
                    assert detail["pointer"].startswith(result["pointer"]), (detail, result)
