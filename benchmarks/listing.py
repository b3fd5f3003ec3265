"""Listing latency when most alerts are hidden from the caller.

    .venv/bin/python benchmarks/listing.py [--hidden 5200] [--repeats 7]

Starts a real redis-server and a hub app in this process, posts one GREEN alert and `--hidden`
RED alerts to me-cert, then times GET /v1/alerts (median of --repeats) for rs-cert, which may see
only the GREEN one, and for me-cert, which may see all. Writes benchmarks/results/listing-<UTC
time>.json. Issue 15 (finding 4) made the listing read per-audience indexes instead of scanning
every alert: rs-cert's time no longer grows with the alerts hidden from it.
"""

import argparse
import asyncio
import datetime as dt
import json
import pathlib
import statistics
import tempfile
import time

from aiohttp.test_utils import TestClient, TestServer

from hub.app import create_app
from hub.settings import Settings
from hub.store.embedded import free_port, start_redis_server

OP = "bench-operator-token-0123456789"


def alert(i, **kw):
    a = {
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


async def main(hidden: int, repeats: int) -> dict:
    d = pathlib.Path(tempfile.mkdtemp())
    server = start_redis_server(d, port=free_port())
    try:
        app = create_app(
            Settings(
                redis_url=server.url, bootstrap_token=OP, rate_limit_per_minute=10**6, data_dir=d
            )
        )
        async with TestClient(TestServer(app)) as c:
            tok = {}
            for n, cc in (("al-cert", "AL"), ("me-cert", "ME"), ("rs-cert", "RS")):
                r = await c.post(
                    "/v1/nodes",
                    json={
                        "id": n,
                        "name": n,
                        "country": cc,
                        "kind": "government",
                        "roles": ["publish", "subscribe"],
                    },
                    headers={"Authorization": f"Bearer {OP}"},
                )
                tok[n] = {"Authorization": f"Bearer {(await r.json())['token']}"}
            await c.post("/v1/alerts", json=alert(99999), headers=tok["al-cert"])
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
            out = {"hidden": hidden, "repeats": repeats, "median_ms": {}}
            for who, q in (
                ("rs-cert", "limit=50"),
                ("me-cert", "limit=50"),
                ("me-cert", "limit=500"),
            ):
                times = []
                for _ in range(repeats):
                    t = time.perf_counter()
                    r = await c.get(f"/v1/alerts?{q}", headers=tok[who])
                    await r.read()
                    times.append((time.perf_counter() - t) * 1000)
                out["median_ms"][f"{who} {q}"] = round(statistics.median(times), 2)
                print(f"{who} {q}: median {statistics.median(times):.1f} ms")
            return out
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=5200)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    result = asyncio.run(main(args.hidden, args.repeats))
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = pathlib.Path(__file__).parent / "results" / f"listing-{stamp}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
