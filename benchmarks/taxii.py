"""TAXII 2.1 object reads against the plain pull feed, for the same alerts in the same run.

    .venv/bin/python -m benchmarks.taxii [--alerts 10000] [--repeats 5] [--limit 1000]
                                         [--quick] [--out PATH]

Starts a real redis-server and a hub app in this process (real HTTP on loopback), registers a
sender and a reader with a pull subscription, posts `--alerts` GREEN threat alerts (three
indicators and an ATT&CK technique each: a report and four objects of their own, plus the
sender's identity and the TLP markings on every page), waits until fan-out has put them all in
the subscription's feed, then reads, `--repeats` times each, every page of:

- the pull feed, `GET /v1/subscriptions/{id}/feed?limit=1000` (events, one per alert);
- the subscription's TAXII collection, `…/collections/{id}/objects/?limit=1000`;
- the `visible` collection (read from the event log), the same way.

Prints and writes (benchmarks/results/taxii-<UTC time>.json, or --out) the median alerts/s and
objects/s of each, the TAXII/feed ratios (issue 17's goal: TAXII objects/s at least 0.5x the
feed read) and the machine; `posted`, `accepted` and each read's alert count let a smoke run
check that nothing was lost. `--quick`: 300 alerts, 3 repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

if not __package__:  # run as a file (python benchmarks/taxii.py): the repository on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.kit.in_process import add_node, hub_client
from benchmarks.kit.report import add_standard_args, machine, write_json

TAXII = "application/taxii+json;version=2.1"


def alert(i: int) -> dict:
    return {
        "id": f"b-{i}",
        "kind": "threat",
        "title": f"Phishing wave {i}",
        "severity": "high",
        "tlp": "GREEN",
        "observed_at": "2026-11-21T10:00:00Z",
        "indicators": [
            {"type": "domain", "value": f"d{i}.example"},
            {"type": "url", "value": f"https://d{i}.example/login"},
            {"type": "ipv4", "value": f"198.51.{i // 256 % 256}.{i % 256}"},
        ],
        "attack_patterns": ["T1566.002"],
    }


async def read_feed(c: TestClient, sub: str, auth: dict, limit: int) -> tuple[int, int, float]:
    """(alerts, objects, seconds) of reading every page of the pull feed."""
    count, after = 0, ""
    t = time.perf_counter()
    while True:
        r = await c.get(f"/v1/subscriptions/{sub}/feed?limit={limit}{after}", headers=auth)
        page = json.loads(await r.read())
        count += len(page["events"])
        if not page["events"]:
            break
        after = f"&after={page['next']}"
    return count, count, time.perf_counter() - t


async def read_taxii(
    c: TestClient, collection: str, auth: dict, limit: int
) -> tuple[int, int, float]:
    """(alerts, objects, seconds) of reading every page of a TAXII collection's objects."""
    base = f"/taxii2/alerthub/collections/{collection}/objects/?limit={limit}"
    headers = {**auth, "Accept": TAXII}
    reports = objects = 0
    path = base
    t = time.perf_counter()
    while True:
        r = await c.get(path, headers=headers)
        assert r.status == 200, await r.text()
        page = json.loads(await r.read())
        found = page.get("objects", [])
        objects += len(found)
        reports += sum(o["type"] == "report" for o in found)
        if not page["more"]:
            break
        path = f"{base}&next={page['next']}"
    return reports, objects, time.perf_counter() - t


async def main(alerts: int, repeats: int, limit: int) -> dict[str, Any]:
    async with hub_client("alerthub-taxii-") as c:
        return await _measure(c, alerts, repeats, limit)


async def _measure(c: TestClient, alerts: int, repeats: int, limit: int) -> dict[str, Any]:
    sender = await add_node(c, "al-cert", "AL")
    reader = await add_node(c, "rs-cert", "RS")
    r = await c.post("/v1/subscriptions", json={"delivery": {"type": "pull"}}, headers=reader)
    sub = (await r.json())["id"]
    accepted = 0
    t = time.perf_counter()
    for s in range(0, alerts, 500):
        batch = {"alerts": [alert(i) for i in range(s, min(s + 500, alerts))]}
        r = await c.post("/v1/alerts/batch", json=batch, headers=sender)
        results = (await r.json())["results"]
        accepted += sum(1 for x in results if x.get("status") == "created")
    print(f"posted {alerts} alerts in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    for _ in range(3000):  # fan-out runs in the background: poll the feed
        if (await read_feed(c, sub, reader, 1000))[0] >= accepted:
            break
        await asyncio.sleep(0.2)
    print(f"fan-out caught up {time.perf_counter() - t:.1f} s later")
    readers = {
        "feed": lambda: read_feed(c, sub, reader, limit),
        "taxii_subscription": lambda: read_taxii(c, sub, reader, limit),
        "taxii_visible": lambda: read_taxii(c, "visible", reader, limit),
    }
    out: dict[str, Any] = {"alerts": alerts, "repeats": repeats, "limit": limit, "runs": {}}
    out.update(posted=alerts, accepted=accepted, read={})
    for name, read in readers.items():
        runs = [await read() for _ in range(repeats)]
        out["read"][name] = min(n for n, _, _ in runs)  # alerts read in the worst run
        seconds = statistics.median(s for _, _, s in runs)
        out["runs"][name] = {
            "objects": runs[0][1],
            "median_s": round(seconds, 3),
            "alerts_per_s": round(runs[0][0] / seconds),
            "objects_per_s": round(runs[0][1] / seconds),
        }
        print(f"{name}: {out['runs'][name]}")
    feed = out["runs"]["feed"]
    for name in ("taxii_subscription", "taxii_visible"):
        run = out["runs"][name]
        run["objects_per_s_vs_feed"] = round(run["objects_per_s"] / feed["objects_per_s"], 2)
        run["alerts_per_s_vs_feed"] = round(run["alerts_per_s"] / feed["alerts_per_s"], 2)
        print(f"{name}: {run['objects_per_s_vs_feed']}x the feed's items/s, "
              f"{run['alerts_per_s_vs_feed']}x its alerts/s")  # fmt: skip
    out["machine"] = machine()
    return out


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--limit", type=int, default=1000)
    add_standard_args(parser, "300 alerts, 3 repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.alerts, args.repeats = min(args.alerts, 300), 3
    result = asyncio.run(main(args.alerts, args.repeats, args.limit))
    out = write_json(result, args.out, "taxii")
    print(f"wrote {out}")
    lost = any(n != result["accepted"] for n in result["read"].values())
    return 0 if result["accepted"] == result["posted"] and not lost else 1


if __name__ == "__main__":
    raise SystemExit(cli())
