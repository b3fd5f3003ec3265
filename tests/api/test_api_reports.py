"""GET /v1/reports/sharing against a real hub and a real Redis: numbers, CSV, refusals, window."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio

from hub.api import reports as api_reports
from hub.settings import Settings
from hub.store.keys import Keys
from tests.conftest import Api, disinfo_alert, threat_alert, unique_threat

PATH = "/v1/reports/sharing"
COLUMNS = (
    "shared",
    "received",
    "corroborated_by_others",
    "corroborations_given",
    "retracted",
    "restricted",
)


async def add_region(api: Api) -> None:
    for node_id, country in (("rs-cert", "RS"), ("al-cert", "AL"), ("xk-cert", "XK")):
        await api.add_node(node_id, country)
    await api.add_node("me-cert", "ME")
    await api.add_node("fc-ba", "BA", kind="civil-society", roles=("subscribe",))


async def post(api: Api, node: str, alert: dict[str, Any], expected: str) -> str:
    status, body = await api.post(node, alert)
    assert status == 201, body
    assert body["status"] == expected, body
    return body["hub_id"]


async def regional_scenario(api: Api) -> dict[str, str]:
    """One disinformation campaign reported from RS, AL and XK; an AMBER phishing wave from AL
    corroborated by ME; a RED alert from RS for ME alone; a GREEN alert from ME, retracted."""
    ids = {
        "rs-d1": await post(api, "rs-cert", disinfo_alert("rs-d1"), "created"),
        "al-d1": await post(api, "al-cert", disinfo_alert("al-d1"), "corroborated"),
        "xk-d1": await post(api, "xk-cert", disinfo_alert("xk-d1"), "corroborated"),
        "al-t1": await post(api, "al-cert", threat_alert("al-t1", tlp="AMBER"), "created"),
        "me-t1": await post(api, "me-cert", threat_alert("me-t1", tlp="AMBER"), "corroborated"),
    }
    red = unique_threat("rs-u1", tlp="RED", share={"recipients": ["me-cert"]})
    ids["rs-u1"] = await post(api, "rs-cert", red, "created")
    ids["me-u2"] = await post(api, "me-cert", unique_threat("me-u2"), "created")
    resp = await api.client.post(
        f"/v1/alerts/{ids['me-u2']}/retract", json={"reason": "wrong"}, headers=api.auth("me-cert")
    )
    assert resp.status == 200, await resp.text()
    return ids


async def logged_ms(settings: Settings) -> dict[str, int]:
    """Each report's stream-id milliseconds in the event log, by hub id."""
    client = redis.asyncio.Redis.from_url(settings.redis_url)
    try:
        entries = await client.xrange(Keys(settings.key_prefix).events)
    finally:
        await client.aclose()
    return {
        f[b"hub_id"].decode(): int(i.split(b"-")[0])
        for i, f in entries
        if f[b"type"] in (b"created", b"corroborated")
    }


async def after_the_log(settings: Settings) -> datetime:
    """A time after every logged entry that every later entry falls at or after: waits, if it
    must, until the Redis clock has passed the newest entry's millisecond."""
    client = redis.asyncio.Redis.from_url(settings.redis_url)
    try:
        (newest,) = await client.xrevrange(Keys(settings.key_prefix).events, count=1)
        newest_ms = int(newest[0].split(b"-")[0])
        while True:
            seconds, micros = await client.time()
            if seconds * 1000 + micros // 1000 > newest_ms:
                break
    finally:
        await client.aclose()
    return datetime.fromtimestamp((newest_ms + 1) / 1000, UTC)


def rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def report(api: Api, query: str = "", **headers: str) -> Any:
    resp = await api.client.get(f"{PATH}{query}", headers={**api.auth("operator"), **headers})
    assert resp.status == 200, await resp.text()
    return resp


async def test_regional_scenario_gives_exact_figures(api: Api, settings: Settings) -> None:
    """Shared, received (by policy), corroborations and medians match the scenario exactly."""
    await add_region(api)
    await post(api, "rs-cert", unique_threat("rs-old"), "created")
    since = await after_the_log(settings)
    ids = await regional_scenario(api)
    ms = await logged_ms(settings)
    body = await (await report(api, f"?since={rfc3339(since)}")).json()
    by_node = {row["node"]: row for row in body["nodes"]}
    assert list(by_node) == ["al-cert", "fc-ba", "me-cert", "rs-cert", "xk-cert"]

    def gap(first: str, then: str) -> float:
        return (ms[ids[then]] - ms[ids[first]]) / 1000

    # The operator sees the GREEN reports only: AMBER al-t1 and me-t1 and RED rs-u1 count in
    # their senders' `restricted` and nowhere else.
    expected = {
        # node: shared, received, corroborated_by_others, corroborations_given, retracted,
        # restricted
        "rs-cert": (1, 3, 1, 0, 0, 1),
        "al-cert": (1, 3, 1, 1, 0, 1),
        "xk-cert": (1, 3, 0, 1, 0, 0),
        "me-cert": (1, 3, 0, 0, 1, 1),
        "fc-ba": (0, 4, 0, 0, 0, 0),
    }
    for node, figures in expected.items():
        assert tuple(by_node[node][c] for c in COLUMNS) == figures, node
    assert by_node["rs-cert"]["median_time_to_corroboration_s"] == gap("rs-d1", "al-d1")
    assert by_node["al-cert"]["median_time_to_corroboration_s"] == gap("al-d1", "xk-d1")
    assert by_node["xk-cert"]["median_time_to_corroboration_s"] is None
    assert by_node["fc-ba"]["country"] == "BA"
    assert body["totals"] == {
        "nodes": 5,
        "shared": 4,  # rs-old is before `since`
        "received": 16,
        "corroborated_by_others": 2,
        "corroborations_given": 2,
        "retracted": 1,
        "restricted": 3,
        "clusters": 2,
        "corroborated_clusters": 1,
        "median_time_to_corroboration_s": gap("rs-d1", "al-d1"),
    }
    assert body["since"] == rfc3339(since)


async def test_default_window_is_the_last_30_days(api: Api) -> None:
    """Without `since` the report covers the last 30 days, so an alert just posted counts."""
    await add_region(api)
    await post(api, "rs-cert", unique_threat("rs-old"), "created")
    body = await (await report(api)).json()
    assert {r["node"]: r["shared"] for r in body["nodes"]}["rs-cert"] == 1
    since = datetime.fromisoformat(body["since"].replace("Z", "+00:00"))
    until = datetime.fromisoformat(body["until"].replace("Z", "+00:00"))
    assert until - since == timedelta(days=30)


async def test_until_ends_the_window(api: Api, settings: Settings) -> None:
    """Alerts logged after `until` are not counted."""
    await add_region(api)
    await post(api, "rs-cert", unique_threat("rs-early"), "created")
    until = await after_the_log(settings)
    await post(api, "rs-cert", unique_threat("rs-late"), "created")
    since = until - timedelta(hours=1)
    query = f"?since={rfc3339(since)}&until={rfc3339(until)}"
    body = await (await report(api, query)).json()
    assert body["totals"]["shared"] == 1


async def test_red_and_amber_alerts_show_only_as_restricted(api: Api) -> None:
    """al-cert's RED alert for me-cert alone and rs-cert's AMBER alert corroborated by xk-cert
    (AMBER too), which the operator gets 404 for, appear in no figure: not as shared, not in
    me-cert's or anyone's received, not as a corroboration or a cluster; only as one
    `restricted` count per sender."""
    await add_region(api)
    red = unique_threat("al-r1", tlp="RED", share={"recipients": ["me-cert"]})
    red_id = await post(api, "al-cert", red, "created")
    status, _ = await api.get("operator", f"/v1/alerts/{red_id}")
    assert status == 404
    await post(api, "rs-cert", threat_alert("rs-a1", tlp="AMBER"), "created")
    await post(api, "xk-cert", threat_alert("xk-a1", tlp="AMBER"), "corroborated")
    body = await (await report(api)).json()
    restricted = {"al-cert": 1, "rs-cert": 1, "xk-cert": 1}
    for row in body["nodes"]:
        assert tuple(row[c] for c in COLUMNS) == (0, 0, 0, 0, 0, restricted.get(row["node"], 0))
        assert row["median_time_to_corroboration_s"] is None
    assert len(body["nodes"]) == 5
    assert body["totals"] == {
        "nodes": 5,
        "shared": 0,
        "received": 0,
        "corroborated_by_others": 0,
        "corroborations_given": 0,
        "retracted": 0,
        "restricted": 3,
        "clusters": 0,
        "corroborated_clusters": 0,
        "median_time_to_corroboration_s": None,
    }


async def test_a_report_the_hub_called_created_is_no_corroboration(api: Api) -> None:
    """rs-cert withholds its GREEN alert from XK, so xk-cert's report of the same content was
    answered `created` (dedup: it may not see the earlier one) and corroborates nothing; al-cert's
    later one corroborates both."""
    await add_region(api)
    alert = disinfo_alert("rs-w1", share={"withhold_from": ["XK"]})
    await post(api, "rs-cert", alert, "created")
    await post(api, "xk-cert", disinfo_alert("xk-w1"), "created")
    await post(api, "al-cert", disinfo_alert("al-w1"), "corroborated")
    body = await (await report(api)).json()
    by_node = {row["node"]: row for row in body["nodes"]}
    assert tuple(by_node["xk-cert"][c] for c in COLUMNS) == (1, 1, 1, 0, 0, 0)  # not rs-w1
    assert tuple(by_node["rs-cert"][c] for c in COLUMNS) == (1, 2, 1, 0, 0, 0)
    assert tuple(by_node["al-cert"][c] for c in COLUMNS) == (1, 2, 0, 1, 0, 0)
    assert (body["totals"]["clusters"], body["totals"]["corroborated_clusters"]) == (1, 1)


async def test_an_entry_at_until_is_in_the_next_window_only(api: Api, settings: Settings) -> None:
    """The window is [since, until): a report whose stream id ms equals `until` is not in the
    window ending there but is in the one starting there, and in one ending a millisecond later."""
    await add_region(api)
    hub_id = await post(api, "rs-cert", unique_threat("rs-edge"), "created")
    at = datetime.fromtimestamp((await logged_ms(settings))[hub_id] / 1000, UTC)
    hour, ms = timedelta(hours=1), timedelta(milliseconds=1)

    async def shared(since: datetime, until: datetime) -> int:
        query = f"?since={rfc3339(since)}&until={rfc3339(until)}"
        body = await (await report(api, query)).json()
        assert (body["since"], body["until"]) == (rfc3339(since), rfc3339(until))
        return body["totals"]["shared"]

    assert await shared(at - hour, at) == 0
    assert await shared(at, at + hour) == 1
    assert await shared(at - hour, at + ms) == 1
    assert await shared(at + ms, at + hour) == 0


async def test_csv_matches_json(api: Api) -> None:
    """The CSV (by format=csv or by Accept) parses with DictReader and holds the JSON's rows."""
    await add_region(api)
    await regional_scenario(api)
    since = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)
    until = rfc3339(datetime.now(UTC) + timedelta(minutes=1))
    query = f"?since={rfc3339(since)}&until={until}"
    filename = f"alerthub-sharing-{since.strftime('%Y%m%dT%H%M%SZ')}.csv"
    as_json = await (await report(api, query)).json()
    for resp in (
        await report(api, query + "&format=csv"),
        await report(api, query, Accept="text/csv"),
    ):
        assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"
        assert resp.headers["Content-Disposition"] == f'attachment; filename="{filename}"'
        rows = list(csv.DictReader(io.StringIO(await resp.text())))
        expected = [
            {k: "" if v is None else str(v) for k, v in node.items()} for node in as_json["nodes"]
        ]
        assert rows == expected


async def test_format_json_wins_over_accept(api: Api) -> None:
    """format=json answers JSON even to a client that accepts CSV."""
    resp = await report(api, "?format=json", Accept="text/csv")
    assert resp.content_type == "application/json"


async def test_without_a_token_is_401(api: Api) -> None:
    """No token: unauthenticated."""
    resp = await api.client.get(PATH)
    assert resp.status == 401
    assert (await resp.json())["error"] == "unauthenticated"


async def test_a_node_without_the_operator_role_is_403(api: Api) -> None:
    """A publishing node may not read the regional report."""
    await add_region(api)
    status, body = await api.get("rs-cert", PATH)
    assert status == 403
    assert body["error"] == "forbidden"


async def test_bad_parameters_are_422_naming_each(api: Api) -> None:
    """A malformed time, an unknown format and an unknown parameter are all named at once."""
    status, body = await api.get("operator", f"{PATH}?since=yesterday&format=xml&limit=5")
    assert status == 422
    assert body["error"] == "validation_failed"
    assert {d["pointer"] for d in body["details"]} == {"/since", "/format", "/limit"}


async def test_windows_that_are_empty_reversed_or_too_long_are_422(api: Api) -> None:
    """since must come before until, a window spans 366 days at most, a time needs a zone."""
    for query in (
        "?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z",
        "?since=2024-01-01T00:00:00Z&until=2025-01-02T00:00:01Z",
        "?since=2026-01-01T00:00:00",
    ):
        status, body = await api.get("operator", PATH + query)
        assert status == 422, query
        assert body["details"][0]["pointer"] == "/since", query


async def test_reading_the_log_in_small_pages_gives_the_same_report(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Paging through the event log (exclusive starts) neither drops nor repeats an entry."""
    await add_region(api)
    await regional_scenario(api)
    until = rfc3339(datetime.now(UTC) + timedelta(minutes=1))
    query = f"?until={until}"
    whole = await (await report(api, query)).json()
    monkeypatch.setattr(api_reports, "PAGE", 2)
    paged = await (await report(api, query)).json()
    assert paged == whole
    assert (paged["totals"]["shared"], paged["totals"]["restricted"]) == (4, 3)


async def test_a_window_with_too_many_events_is_422(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The work is bounded: a window holding more events than the limit asks for a narrower one."""
    await add_region(api)
    await regional_scenario(api)
    monkeypatch.setattr(api_reports, "MAX_ENTRIES", 3)
    status, body = await api.get("operator", PATH)
    assert status == 422
    assert body["details"][0]["pointer"] == "/since"
