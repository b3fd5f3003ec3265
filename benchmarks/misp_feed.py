"""What reading a subscription as a MISP feed costs, beside the plain pull feed of the same alerts.

    .venv/bin/python benchmarks/misp_feed.py [--alerts 10000] [--hidden 0.2] [--repeats 5] [--quick]

Starts a real redis-server and a hub app in this process (aiohttp's test server on loopback),
posts `--alerts` threat alerts with al-cert, a share of them (`--hidden`) TLP:AMBER so that the
reading fact-checker may not see them, waits until fan-out has put every one in the
fact-checker's pull subscription, then times, as the fact-checker, median of `--repeats`:

- pull: every page of GET …/feed?limit=1000 (the plain feed read);
- manifest: GET …/misp/manifest.json (what MISP fetches on every pull);
- hashes: GET …/misp/hashes.csv;
- events: GET …/misp/<uuid>.json for 200 of the manifest's events, one after another (what
  MISP does for each new or changed event).

Reports alerts per second for pull, manifest and hashes (alerts the feed holds / seconds) and
events per second for single events. `--quick` is 1,000 alerts and 3 repeats. Writes
benchmarks/results/misp_feed-<UTC time>.json and prints it.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import pathlib
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks.kit.in_process import add_node, hub_client
from hub.logs import configure_logging

HERE = pathlib.Path(__file__).resolve().parent
SINGLE_EVENTS = 200


def alert(i: int, hidden: bool) -> dict[str, Any]:
    return {
        "id": f"b-{i}",
        "kind": "threat",
        "title": f"Phishing wave {i}",
        "severity": "high",
        "tlp": "AMBER" if hidden else "GREEN",
        "observed_at": "2026-11-21T10:00:00Z",
        "target_countries": ["AL", "RS"],
        "tags": ["phishing"],
        "indicators": [
            {"type": "domain", "value": f"d{i}.phish.example"},
            {"type": "url", "value": f"https://d{i}.phish.example/login"},
            {"type": "ipv4", "value": f"203.0.{i // 250 % 250}.{i % 250}"},
        ],
        "attack_patterns": ["T1566.002"],
    }


async def timed(repeats: int, work: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    """The median seconds of `repeats` runs of `work`, and its last result."""
    times, result = [], None
    for _ in range(repeats):
        began = time.perf_counter()
        result = await work()
        times.append(time.perf_counter() - began)
    return statistics.median(times), result


async def run(alerts: int, hidden_share: float, repeats: int) -> dict[str, Any]:
    async with hub_client("alerthub-misp-feed-") as client:
        tokens = {
            "al-cert": await add_node(client, "al-cert", "AL"),
            "fc-rs": await add_node(client, "fc-rs", "RS", "civil-society"),
        }
        resp = await client.post(
            "/v1/subscriptions", json={"delivery": {"type": "pull"}}, headers=tokens["fc-rs"]
        )
        sub = (await resp.json())["id"]
        every = round(1 / hidden_share) if hidden_share > 0 else 0
        for start in range(0, alerts, 500):
            batch = [alert(i, every > 0 and i % every == 0)
                     for i in range(start, min(alerts, start + 500))]  # fmt: skip
            resp = await client.post(
                "/v1/alerts/batch", json={"alerts": batch}, headers=tokens["al-cert"]
            )
            assert resp.status == 200, await resp.text()
        visible = sum(1 for i in range(alerts) if not (every > 0 and i % every == 0))

        async def pull_all() -> int:
            count, after = 0, ""
            while True:
                resp = await client.get(
                    f"/v1/subscriptions/{sub}/feed?limit=1000{after}", headers=tokens["fc-rs"]
                )
                page = await resp.json()
                count += len(page["events"])
                if not page["events"]:
                    return count
                after = f"&after={page['next']}"

        deadline = time.monotonic() + 600
        while await pull_all() < visible:  # fan-out runs in the background
            assert time.monotonic() < deadline, "fan-out did not catch up"
            await asyncio.sleep(0.2)
        base = f"/v1/subscriptions/{sub}/misp"

        async def read(path: str) -> bytes:
            resp = await client.get(path, headers=tokens["fc-rs"])
            assert resp.status == 200, await resp.text()
            return await resp.read()

        pull_s, pulled = await timed(repeats, pull_all)
        manifest_s, manifest = await timed(repeats, lambda: read(f"{base}/manifest.json"))
        hashes_s, hashes = await timed(repeats, lambda: read(f"{base}/hashes.csv"))
        uuids = list(json.loads(manifest))[:SINGLE_EVENTS]

        async def events() -> None:
            for event_uuid in uuids:
                await read(f"{base}/{event_uuid}.json")

        events_s, _ = await timed(repeats, events)
        assert pulled == visible == len(json.loads(manifest))
        return {
            "benchmark": "misp_feed",
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": {"python": platform.python_version(), "platform": platform.platform()},
            "alerts_posted": alerts,
            "alerts_visible": visible,
            "repeats": repeats,
            "pull": {"seconds": pull_s, "alerts_per_s": visible / pull_s},
            "manifest": {
                "seconds": manifest_s,
                "alerts_per_s": visible / manifest_s,
                "bytes": len(manifest),
            },
            "hashes": {
                "seconds": hashes_s,
                "alerts_per_s": visible / hashes_s,
                "bytes": len(hashes),
                "lines": hashes.count(b"\n"),
            },
            "single_events": {
                "count": len(uuids),
                "seconds": events_s,
                "events_per_s": len(uuids) / events_s,
            },
            "manifest_vs_pull": pull_s / manifest_s,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--hidden", type=float, default=0.2, help="share of AMBER alerts")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1,000 alerts, 3 repeats")
    parser.add_argument("--out", type=pathlib.Path, help="where to write the JSON report")
    args = parser.parse_args()
    if args.quick:
        args.alerts, args.repeats = 1000, 3
    configure_logging("warning")  # a served hub logs a line a request; timed here without it
    report = asyncio.run(run(args.alerts, args.hidden, args.repeats))
    out = args.out or HERE / "results" / f"misp_feed-{report['at'].replace(':', '')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
