"""The operators' status page, opened in a real headless Chromium (Debian's, driven by
Playwright) against a real hub on a loopback port and a real Redis: the token form, the refusal
of a wrong token, and the chart, the lagging subscription and the recent alerts after a
scenario, with no console or page errors."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from playwright.async_api import Browser, ConsoleMessage, Error, Page, async_playwright, expect

from hub.app import create_app
from hub.ingest.validation import SchemaSet
from hub.settings import Settings
from hub.store.keys import Keys
from tests.conftest import OPERATOR_TOKEN, Api, disinfo_alert, unique_threat
from tests.receivers import Receiver

CHROMIUM = Path("/usr/bin/chromium")
# Without these a fresh machine's Chromium calls Google hosts, which a closed network refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 15_000  # the page refreshes every 5 s; a change shows within one or two refreshes
# Chromium itself logs each refused request of the page as a console error; the page's answer
# to a wrong token is what is tested, so these (and only these) are expected then.
REFUSED_LOADS = {
    f"Failed to load resource: the server responded with a status of {status}"
    for status in ("401 (Unauthorized)", "403 (Forbidden)")
}

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"),
    reason="no /usr/bin/chromium (apt-get install chromium); CI installs it and runs this test",
)

POSTS = {
    "al-cert": ("AL", ["Phishing wave impersonating the e-Albania portal", "Fake tax refund SMS"]),
    "rs-cert": (
        "RS",
        [
            "Ransomware at a Belgrade hospital",
            "Credential stuffing on eUprava",
            "<img src=x onerror=alert(1)> Telegram bot spreading malware",
        ],
    ),
    "me-cert": ("ME", ["DDoS on the Montenegrin government portal"]),
}


@dataclasses.dataclass
class Watched:
    """A page with every console error and uncaught page error it produced, and the paths of
    the hub's API it asked for."""

    page: Page
    errors: list[str]
    api_calls: list[str]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        yield launched
        await launched.close()


@pytest.fixture
async def hub_api(
    aiohttp_client: Any, delivery_settings: Settings, schema_set: SchemaSet
) -> AsyncIterator[Api]:
    """A hub on a loopback port whose failed webhook deliveries wait a minute before a retry,
    so a failing subscription stays failing and falls behind while the page looks at it."""
    settings = dataclasses.replace(delivery_settings, retry_schedule=(0, 60.0))
    client = await aiohttp_client(create_app(settings, schema_set))
    yield Api(client)


@pytest.fixture
async def failing_receiver() -> AsyncIterator[Receiver]:
    receiver = await Receiver(answers=[500] * 1000).start()
    yield receiver
    await receiver.stop()


async def open_status(browser: Browser, api: Api) -> Watched:
    page = await (await browser.new_context()).new_page()
    watched = Watched(page, [], [])

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.errors.append(message.text)

    def on_error(error: Error) -> None:
        watched.errors.append(f"page error: {error}")

    page.on("console", on_console)
    page.on("pageerror", on_error)
    page.on("request", lambda r: watched.api_calls.append(r.url) if "/v1/" in r.url else None)
    response = await page.goto(str(api.client.make_url("/status")))
    assert response is not None and response.status == 200
    return watched


async def enter_token(page: Page, token: str) -> None:
    await page.locator("#token").fill(token)
    await page.locator("#token-form button[type=submit]").click()


async def expect_no_data(page: Page) -> None:
    await expect(page.locator("#data")).to_be_hidden()
    await expect(page.locator("#chart svg")).to_have_count(0)
    await expect(page.locator("tbody tr")).to_have_count(0)


async def scenario(api: Api, receiver: Receiver) -> tuple[str, str]:
    """Three countries post alerts; ba-cert has a webhook that always answers 500 and a pull
    subscription it never reads. Returns (failing id, quiet id) once the webhook has failed."""
    for node, (country, _) in POSTS.items():
        await api.add_node(node, country=country)
    await api.add_node("ba-cert", country="BA")
    failing = await api.subscribe("ba-cert", {"type": "webhook", "url": receiver.url})
    quiet = await api.subscribe("ba-cert")
    for node, (_, titles) in POSTS.items():
        for i, title in enumerate(titles):
            alert = unique_threat(f"{node}-{i}", title=title)
            if node == "al-cert" and i == 0:
                alert["tlp"] = "AMBER"
            status, body = await api.post(node, alert)
            assert status == 201, body
    status, body = await api.post("me-cert", disinfo_alert("me-d-1", tlp="CLEAR"))
    assert status == 201, body
    await receiver.wait_for(lambda r: len(r.deliveries) >= 1)
    return failing["id"], quiet["id"]


async def test_status_files_are_served_with_a_strict_policy(hub_api: Api) -> None:
    """The page and its two files come with their types, a CSP without inline script and
    nosniff; any other name under /status is 404 and never reaches the file system."""
    for path, kind in (
        ("/status", "text/html"),
        ("/status/status.js", "text/javascript"),
        ("/status/status.css", "text/css"),
    ):
        resp = await hub_api.client.get(path)
        assert resp.status == 200 and resp.content_type == kind
        policy = resp.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert "max-age" in resp.headers["Cache-Control"]
    for path in (
        "/status/api_page.py",
        "/status/..%2Fapp.py",
        "/status/%2e%2e%2fsettings.py",
        "/status/.",
        "/status/status.js.map",
    ):
        resp = await hub_api.client.get(path)
        assert resp.status == 404, path


@needs_chromium
async def test_without_a_token_the_page_asks_for_one_and_refuses_a_wrong_one(
    hub_api: Api, browser: Browser
) -> None:
    """No token: the form and no data, no API call; a wrong token: the refusal and no data."""
    await hub_api.add_node("al-cert", country="AL")
    await hub_api.post("al-cert", unique_threat("al-1", title="Not for strangers"))
    watched = await open_status(browser, hub_api)
    page = watched.page
    await expect(page.locator("#token-form")).to_be_visible()
    await expect_no_data(page)
    assert watched.api_calls == []

    await enter_token(page, "not-the-operator-token")
    await expect(page.locator("#message")).to_contain_text("refused", timeout=WAIT_MS)
    await expect(page.locator("#token-form")).to_be_visible()
    await expect_no_data(page)
    assert await page.get_by_text("Not for strangers").count() == 0
    assert await page.evaluate("sessionStorage.length") == 0

    await enter_token(page, hub_api.tokens["al-cert"])  # a node's token, not an operator's
    await expect(page.locator("#message")).to_contain_text("403", timeout=WAIT_MS)
    await expect_no_data(page)
    assert set(watched.errors) <= REFUSED_LOADS, watched.errors


@needs_chromium
async def test_with_the_operator_token_the_page_shows_the_chart_lagging_and_alerts(
    hub_api: Api, browser: Browser, failing_receiver: Receiver
) -> None:
    """After the scenario: bars per posting country, the failing webhook highlighted with a
    text marker, the recent alerts' titles (as text) with TLP badges; kept across a reload,
    gone after "forget token"; no console or page errors."""
    failing_id, quiet_id = await scenario(hub_api, failing_receiver)
    watched = await open_status(browser, hub_api)
    page = watched.page
    await enter_token(page, OPERATOR_TOKEN)

    for country in ("AL", "ME", "RS"):
        await expect(
            page.locator(f"#chart svg rect.bar[data-country={country}]")
        ).not_to_have_count(0, timeout=WAIT_MS)
        await expect(page.locator(f"#legend li[data-country={country}]")).to_be_visible()
    await expect(page.locator("#chart svg rect.bar[data-country=BA]")).to_have_count(0)
    await expect(page.locator("#chart svg title").first).to_have_text(
        "Alerts stored per hour and sender country"
    )

    failing_row = page.locator(f"#subscriptions tr[data-id='{failing_id}']")
    await expect(failing_row).to_have_class("lagging", timeout=WAIT_MS)
    await expect(failing_row.locator("td.marker")).to_contain_text("failing")
    await expect(page.locator(f"#subscriptions tr[data-id='{quiet_id}']")).not_to_have_class(
        "lagging"
    )

    status, listing = await hub_api.get("operator", "/v1/alerts?limit=20")
    assert status == 200 and listing["alerts"]
    titles = page.locator("#alerts td.title")
    await expect(titles).to_have_text([a["title"] for a in listing["alerts"]], timeout=WAIT_MS)
    await expect(page.locator("#alerts .tlp")).to_have_text(
        [f"TLP:{a['tlp']}" for a in listing["alerts"]]
    )
    for tlp, badge in (("GREEN", "tlp-green"), ("CLEAR", "tlp-clear")):
        shown = sum(a["tlp"] == tlp for a in listing["alerts"])
        assert shown > 0
        await expect(page.locator(f"#alerts .{badge}")).to_have_count(shown)
    await expect(page.locator("#alerts img")).to_have_count(0)  # the markup title is text

    await page.reload()
    await expect(page.locator("#data")).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator("#token-form")).to_be_hidden()

    await page.locator("#forget").click()
    await expect(page.locator("#token-form")).to_be_visible()
    await expect_no_data(page)
    assert await page.evaluate("sessionStorage.length") == 0
    assert watched.errors == []


@needs_chromium
async def test_nodes_registered_in_the_last_7_days_are_listed_first(
    hub_api: Api, browser: Browser, redis_url: str
) -> None:
    """A node registered by an operator node shows in the "registered in the last 7 days"
    list with who registered it; one registered 10 days ago is only in the nodes table."""
    await hub_api.add_node("ops-desk", "ME", roles=("operator",))
    resp = await hub_api.client.post(
        "/v1/nodes",
        json={
            "id": "me-new",
            "name": "Newcomer",
            "country": "ME",
            "kind": "government",
            "roles": ["subscribe"],
        },
        headers=hub_api.auth("ops-desk"),
    )
    assert resp.status == 201, await resp.text()
    await hub_api.add_node("al-old", "AL")
    old = (datetime.now(UTC) - timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    client = redis.Redis.from_url(redis_url)
    try:
        key = Keys().node("al-old")
        profile = json.loads(client.hget(key, "json"))
        client.hset(key, "json", json.dumps({**profile, "created_at": old}))
    finally:
        client.close()

    watched = await open_status(browser, hub_api)
    page = watched.page
    await enter_token(page, OPERATOR_TOKEN)
    listed = page.locator("#new-nodes li")
    await expect(page.locator("#new-nodes")).to_be_visible(timeout=WAIT_MS)
    await expect(listed).to_have_count(2)  # me-new, newest first, then ops-desk
    await expect(listed.first).to_have_attribute("data-id", "me-new")
    await expect(listed.first).to_contain_text("Newcomer")
    await expect(listed.first.locator(".by")).to_have_text("ops-desk")
    await expect(page.locator("#new-nodes li[data-id=al-old]")).to_have_count(0)
    await expect(page.locator("#nodes tr[data-id=al-old] td.new")).to_have_count(0)
    await expect(page.locator("#nodes tr[data-id=me-new] td.new")).to_contain_text("ops-desk")
    assert watched.errors == []
