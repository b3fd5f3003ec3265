"""A corpus of bad input: each case gets its status and error code, and the hub keeps serving."""

from __future__ import annotations

import io
import json

import orjson
import pytest
import redis

from hub.settings import Settings
from hub.store.keys import Keys
from tests.conftest import Api, disinfo_alert, threat_alert


def _json(doc: object) -> bytes:
    return json.dumps(doc).encode()


def _with(**changes: object) -> bytes:
    return _json(threat_alert(**changes))


def _nested(depth: int) -> bytes:
    return b'{"id": "t-1", "tags": ' + b"[" * depth + b"]" * depth + b"}"


def _repeat(members: bytes) -> bytes:
    """A valid threat alert with `members` in place of its tlp."""
    alert = threat_alert()
    del alert["tlp"]
    return _json(alert)[:-1] + b", " + members + b"}"


JSON = "application/json"
CASES = [
    ("truncated JSON", b'{"id": "t-1", "kind":', JSON, 400, "malformed_json"),
    ("empty body", b"", JSON, 400, "malformed_json"),
    ("not UTF-8", b'{"id": "\xff\xfe"}', JSON, 400, "malformed_json"),
    ("lone high surrogate", b'{"id": "t-1", "title": "\\ud800"}', JSON, 400, "malformed_json"),
    ("lone low surrogate", b'{"title": "x\\udc00"}', JSON, 400, "malformed_json"),
    ("raw NUL byte in a string", b'{"title": "a\x00b"}', JSON, 400, "malformed_json"),
    ("NaN", b'{"confidence": NaN}', JSON, 400, "malformed_json"),
    ("number overflowing a double", b'{"confidence": 1e400}', JSON, 400, "malformed_json"),
    ("array root", b"[]", JSON, 400, "malformed_json"),
    ("string root", b'"alert"', JSON, 400, "malformed_json"),
    ("a key given twice", _repeat(b'"tlp": "RED", "tlp": "GREEN"'), JSON, 400, "malformed_json"),
    (
        "a key given twice in a nested object",
        _repeat(b'"tlp": "RED", "share": {"recipients": ["al-cert"], "recipients": []}'),
        JSON,
        400,
        "malformed_json",
    ),
    ("nesting deeper than the parser allows", _nested(5000), JSON, 400, "malformed_json"),
    ("nesting the parser allows", _nested(500), JSON, 422, "validation_failed"),
    ("text/plain", _with(), "text/plain", 415, "unsupported_media_type"),
    ("form encoded", b"id=t-1", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ("no content type", _with(), "", 415, "unsupported_media_type"),
    (
        "latin-1 charset",
        _with(),
        "application/json; charset=latin-1",
        415,
        "unsupported_media_type",
    ),
    ("over 256 KiB", _with(summary="x" * 300_000), JSON, 413, "payload_too_large"),
    ("huge array", _with(tags=["a"] * 20_000), JSON, 422, "validation_failed"),
    ("very long title", _with(title="x" * 50_000), JSON, 422, "validation_failed"),
    ("escaped NUL in the title", _with(title="a\u0000b"), JSON, 422, "validation_failed"),
    ("number as string", _with(confidence="80"), JSON, 422, "validation_failed"),
    ("revision as string", _with(revision="2"), JSON, 422, "validation_failed"),
    ("boolean for a number", _with(confidence=True), JSON, 422, "validation_failed"),
    ("null title", _with(title=None), JSON, 422, "validation_failed"),
    ("object for a list", _with(tags={"a": 1}), JSON, 422, "validation_failed"),
    (
        "unknown top-level field",
        _with(hub_id="01J0000000000000000000000"),
        JSON,
        422,
        "validation_failed",
    ),
    ("wrong kind", _with(kind="rumour"), JSON, 422, "validation_failed"),
    ("another sender", _with(sender="rs-cert"), JSON, 403, "forbidden"),
    ("another source country", _with(source_country="RS"), JSON, 403, "forbidden"),
    ("empty object", b"{}", JSON, 422, "validation_failed"),
]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
async def test_bad_input_gets_a_clear_answer(
    api: Api, redis_url: str, body: bytes, content_type: str, status: int, code: str
) -> None:
    """Each bad body gets its status and error code, stores nothing, and the hub still serves."""
    await api.add_node("al-cert", "AL")
    headers = {**api.auth("al-cert")}
    if content_type:
        headers["Content-Type"] = content_type
    resp = await api.client.post(
        "/v1/alerts", data=body, headers=headers, skip_auto_headers=["Content-Type"]
    )
    assert resp.status == status
    answer = await resp.json()
    assert answer["error"] == code
    assert isinstance(answer["message"], str) and "Traceback" not in answer["message"]
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.zcard(Keys().recent) == 0
        logged = [f[b"type"] for _, f in client.xrange(Keys().events)]
        assert logged == [b"node_registered"]  # al-cert's registration, and no alert
    finally:
        client.close()
    status_after, _ = await api.post("al-cert", threat_alert("after"))
    assert status_after == 201


async def test_validation_errors_name_pointer_rule_and_message(api: Api) -> None:
    """A 422 lists every problem with its JSON pointer, rule and a sentence."""
    await api.add_node("al-cert", "AL")
    alert = threat_alert(confidence="80", surprise=1)
    del alert["title"]
    status, body = await api.post("al-cert", alert)
    assert status == 422
    found = {(d["pointer"], d["rule"]) for d in body["details"]}
    assert ("/title", "required") in found
    assert ("/confidence", "type") in found
    assert any(p == "/surprise" for p, _ in found)
    assert all(d["message"] for d in body["details"])
    assert body["message"].startswith(f"{len(body['details'])} problems")


async def test_unknown_route_and_wrong_method_are_json(api: Api) -> None:
    """Unknown paths are a JSON 404; a wrong method is a JSON 405 with Allow."""
    resp = await api.client.get("/v1/nothing-here")
    assert resp.status == 404 and (await resp.json())["error"] == "not_found"
    resp = await api.client.put("/v1/alerts")
    assert resp.status == 405
    body = await resp.json()
    assert body == {
        "error": "method_not_allowed",
        "message": "PUT is not allowed here; Allow: GET, POST",
    }
    assert resp.headers["Allow"] == "GET, POST"


async def test_401_carries_a_bearer_challenge(api: Api) -> None:
    """A 401 says how to authenticate (RFC 6750): `Bearer realm="alerthub"` without a token,
    and with error="invalid_token" and the reason when the token is not accepted."""
    resp = await api.client.get("/v1/alerts")
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="alerthub"'
    resp = await api.client.get("/v1/alerts", headers={"Authorization": "Bearer ah_0.x"})
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == (
        'Bearer realm="alerthub", error="invalid_token", '
        'error_description="the bearer token is not a valid hub token"'
    )


async def test_oversize_batch_is_413(api: Api) -> None:
    """A batch body over 4 MiB is a 413 before it is parsed."""
    await api.add_node("al-cert", "AL")
    body = b'{"alerts": [' + b",".join([_with(summary="x" * 9000)] * 500) + b"]}"
    assert len(body) > 4 * 1024 * 1024
    resp = await api.client.post(
        "/v1/alerts/batch",
        data=io.BytesIO(body),
        headers={**api.auth("al-cert"), "Content-Type": "application/json"},
    )
    assert resp.status == 413


async def test_chunked_body_over_the_limit_is_413(api: Api) -> None:
    """A body sent without Content-Length is cut off at the limit with a 413."""
    await api.add_node("al-cert", "AL")

    async def chunks():
        for _ in range(40):
            yield b"x" * 16384

    resp = await api.client.post(
        "/v1/alerts",
        data=chunks(),
        headers={**api.auth("al-cert"), "Content-Type": "application/json"},
    )
    assert resp.status == 413
    assert (await resp.json())["error"] == "payload_too_large"


def alert_of_size(alert_id: str, size: int) -> dict:
    """A valid disinformation alert whose compact JSON (orjson's) is exactly `size` bytes."""
    alert = disinfo_alert(alert_id, claims=[])
    claims = alert["claims"]
    i = 0
    while True:
        claims.append({"text": f"{alert_id} {i} ", "language": "en"})
        missing = size - len(orjson.dumps(alert))
        if missing <= 5000 - len(claims[-1]["text"]):
            claims[-1]["text"] += "x" * missing
            break
        claims[-1]["text"] += "x" * (5000 - len(claims[-1]["text"]))
        i += 1
    assert len(orjson.dumps(alert)) == size
    return alert


async def test_an_alert_over_the_limit_is_refused_in_a_batch_as_alone(
    api: Api, settings: Settings
) -> None:
    """An alert over the per-alert limit (ALERTHUB_MAX_BODY_BYTES) is refused alone as 413 and
    in a batch as that item's payload_too_large, measured as its JSON; the alerts beside it,
    one of exactly the limit among them, are stored."""
    await api.add_node("al-cert", "AL")
    limit = settings.max_body_bytes
    over = alert_of_size("d-over", limit + 1)
    at = alert_of_size("d-at", limit)
    resp = await api.client.post(
        "/v1/alerts",
        data=orjson.dumps(over),
        headers={**api.auth("al-cert"), "Content-Type": "application/json"},
    )
    assert resp.status == 413 and (await resp.json())["error"] == "payload_too_large"

    batch = {"alerts": [threat_alert("t-1"), over, at]}
    resp = await api.client.post(
        "/v1/alerts/batch",
        data=orjson.dumps(batch),
        headers={**api.auth("al-cert"), "Content-Type": "application/json"},
    )
    assert resp.status == 200
    results = (await resp.json())["results"]
    assert [r["status"] for r in results] == ["created", "rejected", "created"]
    error = results[1]["error"]
    assert error["error"] == "payload_too_large" and str(limit) in error["message"]
    status, _ = await api.get("al-cert", f"/v1/alerts/{results[2]['hub_id']}")
    assert status == 200


async def test_a_key_given_twice_in_one_alert_refuses_the_batch(api: Api, redis_url: str) -> None:
    """A batch in which one alert gives a key twice is malformed as a whole: 400 naming the key
    and the object's pointer, and none of its alerts is stored."""
    await api.add_node("al-cert", "AL")
    first = _json(threat_alert("t-1"))
    second = _repeat(b'"tlp": "RED", "share": {"recipients": ["al-cert"], "recipients": []}')
    body = b'{"alerts": [' + first + b", " + second + b"]}"
    resp = await api.client.post(
        "/v1/alerts/batch",
        data=body,
        headers={**api.auth("al-cert"), "Content-Type": "application/json"},
    )
    assert resp.status == 400
    answer = await resp.json()
    assert answer["error"] == "malformed_json"
    assert '"recipients"' in answer["message"] and "/alerts/1/share" in answer["message"]
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.zcard(Keys().recent) == 0
    finally:
        client.close()
