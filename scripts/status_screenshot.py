"""Take docs/status-page.png: a hub on a throw-away Redis, the demo nodes posting alerts, one
webhook that always fails, a day of sharing history, and the status page in headless Chromium.

    .venv/bin/python scripts/status_screenshot.py [output.png]

Needs Debian's chromium at /usr/bin/chromium and the `test` extra (Playwright)."""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from playwright.async_api import async_playwright

from hub.app import create_app
from hub.demo.command import DEMO_NODES
from hub.settings import Settings
from hub.store.embedded import free_port, start_redis_server
from hub.store.keys import Keys

TOKEN = "screenshot-operator-token-0123456789"
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
ALERTS: list[tuple[str, str, str]] = [
    ("al-cert", "GREEN", "Phishing wave impersonating the e-Albania portal"),
    ("rs-cert", "GREEN", "Fabricated claim of NATO troop build-up in northern Kosovo"),
    ("me-cert", "AMBER", "DDoS against the Montenegrin government portal"),
    ("mk-cert", "GREEN", "Fake pension top-up SMS targeting North Macedonia"),
    ("xk-cert", "CLEAR", "Advisory: patch the edge VPN gateways this week"),
    ("ba-cert", "GREEN", "Deepfake video of a BiH minister shared on TikTok"),
    ("rs-cert", "GREEN", "Credential stuffing against eUprava accounts"),
    ("al-cert", "CLEAR", "Public advisory: fake customs notices by e-mail"),
    ("mk-cert", "GREEN", "Telegram channel spreading a doctored election poll"),
]


async def failing_receiver(port: int) -> web.AppRunner:
    """Answers the verification challenge, then 500 for every event."""

    async def hook(request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("type") == "hub.verification":
            return web.json_response({"challenge": body["challenge"]})
        return web.Response(status=500)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def alert(node: str, n: int, tlp: str, title: str) -> dict[str, Any]:
    return {
        "id": f"{node}-2026-{n:04d}",
        "kind": "threat",
        "title": title,
        "severity": "high",
        "confidence": 80,
        "tlp": tlp,
        "target_countries": ["AL", "BA", "ME", "MK", "RS", "XK"],
        "observed_at": "2026-11-24T06:00:00Z",
        "indicators": [{"type": "domain", "value": f"{node}-{n}.phish.example"}],
    }


async def backfill_history(settings: Settings) -> None:
    """A day of plausible per-country counts, so the chart looks like a working hub's."""
    from redis.asyncio import Redis

    keys = Keys(settings.key_prefix)
    rng = random.Random(7)
    now_hour = int(time.time()) // 3600
    client = Redis.from_url(settings.redis_url or "")
    try:
        for back in range(1, 24):
            for country in ("AL", "BA", "ME", "MK", "RS", "XK"):
                count = rng.choice([0, 0, 1, 1, 2, 3, 4]) + (3 if 8 <= back <= 11 else 0)
                if count:
                    await client.hincrby(keys.sharing_hour(now_hour - back), country, count)
    finally:
        await client.aclose()


async def main(output: Path) -> None:
    with tempfile.TemporaryDirectory() as folder:
        redis_server = start_redis_server(Path(folder), port=free_port())
        settings = Settings(
            redis_url=redis_server.url,
            data_dir=Path(folder),
            bootstrap_token=TOKEN,
            allow_private_webhooks=True,
            retry_schedule=(0, 600.0),
        )
        runner = web.AppRunner(create_app(settings))
        receiver = await failing_receiver(free_port())
        try:
            await runner.setup()
            port = free_port()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            await scenario(f"http://127.0.0.1:{port}", receiver, settings)
            await shoot(f"http://127.0.0.1:{port}/status", output)
        finally:
            await receiver.cleanup()
            await runner.cleanup()
            redis_server.stop()


async def scenario(base: str, receiver: web.AppRunner, settings: Settings) -> None:
    operator = {"Authorization": f"Bearer {TOKEN}"}
    tokens: dict[str, str] = {}
    async with aiohttp.ClientSession(base) as http:
        for profile in DEMO_NODES:
            body = {**profile, "roles": ["publish", "subscribe"]}
            async with http.post("/v1/nodes", json=body, headers=operator) as resp:
                tokens[profile["id"]] = (await resp.json())["token"]
        hook_port = receiver.addresses[0][1]
        hook = {"type": "webhook", "url": f"http://127.0.0.1:{hook_port}/hook"}
        subs = [
            ("ba-cert", hook),
            ("factcheck-rs", {"type": "pull"}),
            ("me-cert", {"type": "pull"}),
        ]
        for node, delivery in subs:
            auth = {"Authorization": f"Bearer {tokens[node]}"}
            body = {"filter": {}, "delivery": delivery}
            async with http.post("/v1/subscriptions", json=body, headers=auth) as resp:
                assert resp.status == 201, await resp.text()
        for n, (node, tlp, title) in enumerate(ALERTS):
            auth = {"Authorization": f"Bearer {tokens[node]}"}
            async with http.post("/v1/alerts", json=alert(node, n, tlp, title), headers=auth) as r:
                assert r.status == 201, await r.text()
        bad = {"id": "broken"}
        auth = {"Authorization": f"Bearer {tokens['xk-cert']}"}
        async with http.post("/v1/alerts", json=bad, headers=auth) as resp:
            assert resp.status == 422
        await backfill_history(settings)
        # Until the failing webhook shows as failing in the status document.
        for _ in range(200):
            async with http.get("/v1/status", headers=operator) as resp:
                status = await resp.json()
            if any(s["consecutive_failures"] for s in status.get("subscriptions") or []):
                return
            await asyncio.sleep(0.05)


async def shoot(url: str, output: Path) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await page.goto(url)
        await page.locator("#token").fill(TOKEN)
        await page.locator("#token-form button[type=submit]").click()
        await page.locator("#subscriptions tr.lagging").first.wait_for(timeout=15_000)
        await page.locator("#chart svg rect.bar").first.wait_for()
        output.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(output), full_page=True)
        await browser.close()
    print(f"wrote {output}")


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/status-page.png")
    asyncio.run(main(target))
