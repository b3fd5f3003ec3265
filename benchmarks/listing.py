"""Listing latency when most alerts are hidden from the caller.

    .venv/bin/python -m benchmarks.listing [--hidden 5200] [--repeats 7] [--quick] [--out PATH]

Starts a real redis-server and a hub app in this process, posts one GREEN alert and `--hidden`
RED alerts to me-cert, then times GET /v1/alerts (median of --repeats) for rs-cert, which may see
only the GREEN one, and for me-cert, which may see all. Writes benchmarks/results/listing-<UTC
time>.json, or --out; `posted`, `accepted` and `listed` let a smoke run check that nothing was
lost. Issue 15 (finding 4) made the listing read per-audience indexes instead of scanning
every alert: rs-cert's time no longer grows with the alerts hidden from it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

if not __package__:  # run as a file (python benchmarks/listing.py): the repository on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.kit.in_process import add_node, hub_client
from benchmarks.kit.report import add_standard_args, write_json

QUERIES = (("rs-cert", "limit=50"), ("me-cert", "limit=50"), ("me-cert", "limit=500"))


def alert(i: int, **kw: Any) -> dict[str, Any]:
    a: dict[str, Any] = {
        "id": f"a-{i}",
        "kind": "threat",
        "title": "t",
        "severity": "high",
        "tlp": "GREEN",
        "observed_at": "2026-11-21T10:00:00Z",
        "indicators": [{"type": "domain", "value": f"d{i}.example"}],
    }
    a.update(kw)
    return a


async def main(hidden: int, repeats: int) -> dict[str, Any]:
    async with hub_client("alerthub-listing-") as c:
        return await _measure(c, hidden, repeats)


async def _measure(c: TestClient, hidden: int, repeats: int) -> dict[str, Any]:
    tok = {n: await add_node(c, n, cc) for n, cc in (("al-cert", "AL"), ("me-cert", "ME"),
                                                     ("rs-cert", "RS"))}  # fmt: skip
    r = await c.post("/v1/alerts", json=alert(99999), headers=tok["al-cert"])
    accepted = int(r.status == 201)
    for s in range(0, hidden, 500):
        r = await c.post(
            "/v1/alerts/batch",
            json={
                "alerts": [
                    alert(i, tlp="RED", share={"recipients": ["me-cert"]})
                    for i in range(s, min(s + 500, hidden))
                ]
            },
            headers=tok["al-cert"],
        )
        assert r.status == 200
        results = (await r.json())["results"]
        accepted += sum(1 for x in results if x.get("status") == "created")
    out: dict[str, Any] = {"hidden": hidden, "repeats": repeats, "median_ms": {}}
    listed: dict[str, int] = {}
    for who, q in QUERIES:
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            r = await c.get(f"/v1/alerts?{q}", headers=tok[who])
            body = await r.json()
            times.append((time.perf_counter() - t) * 1000)
        out["median_ms"][f"{who} {q}"] = round(statistics.median(times), 2)
        listed[f"{who} {q}"] = len(body["alerts"])
        print(f"{who} {q}: median {statistics.median(times):.1f} ms")
    out.update(posted=hidden + 1, accepted=accepted, listed=listed)
    return out


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=5200)
    parser.add_argument("--repeats", type=int, default=7)
    add_standard_args(parser, "200 hidden alerts, 3 repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.hidden, args.repeats = min(args.hidden, 200), 3
    result = asyncio.run(main(args.hidden, args.repeats))
    out = write_json(result, args.out, "listing")
    print(f"wrote {out}")
    return 0 if result["accepted"] == result["posted"] else 1


if __name__ == "__main__":
    raise SystemExit(cli())
