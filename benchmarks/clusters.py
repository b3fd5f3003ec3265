"""Triage-queue latency (GET /v1/clusters) for a fact-checker and for a CERT.

    .venv/bin/python -m benchmarks.clusters [--hidden 5000] [--visible 2000] [--repeats 7]
        [--quick] [--out PATH]

Starts a real redis-server and a hub app in this process. al-cert posts `--visible` GREEN
disinformation reports (in clusters of 1 to 4 reports, so there are fewer clusters than
reports) and `--hidden` RED reports to me-cert (half of them copies of GREEN content, so the
clusters a checker sees also hold reports it may not see). Then times, median of --repeats,
the queue of factcheck-ba (may see the GREEN reports only) and of me-cert (may see all), by
last_seen (first page of 50: reads no further back than it shows) and by spread (ranks every
cluster of the window). Writes benchmarks/results/clusters-<UTC time>.json, or --out; `posted`
and `accepted` (reports answered created or corroborated) let a smoke run check that nothing
was lost.
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import statistics
import sys
import time
from typing import Any

if not __package__:  # run as a file (python benchmarks/clusters.py): the repository on the path
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from benchmarks.kit.in_process import add_node, hub_client
from benchmarks.kit.report import add_standard_args, write_json


def report(i: int, content: int, **kw: Any) -> dict[str, Any]:
    body = {
        "id": f"r-{i}",
        "kind": "disinformation",
        "title": f"claim {content}",
        "severity": "high",
        "tlp": "GREEN",
        "observed_at": "2026-11-21T10:00:00Z",
        "languages": ["sr-Latn" if i % 2 else "sq"],
        "claims": [{"text": f"claim number {content}", "language": "sr-Latn"}],
    }
    body.update(kw)
    return body


async def main(hidden: int, visible: int, repeats: int) -> dict[str, Any]:
    async with hub_client("alerthub-clusters-") as c:
        roles = ("publish", "subscribe", "fact-check")
        tok = {n: await add_node(c, n, cc, kind, roles)
               for n, cc, kind in (("al-cert", "AL", "government"),
                                   ("me-cert", "ME", "government"),
                                   ("factcheck-ba", "BA", "civil-society"))}  # fmt: skip
        bodies = [report(i, i // 3) for i in range(visible)]
        bodies += [
            report(visible + i, i // 3 if i % 2 else 10**6 + i, tlp="RED",
                   share={"recipients": ["me-cert"]})
            for i in range(hidden)
        ]  # fmt: skip
        accepted = 0
        for s in range(0, len(bodies), 500):
            r = await c.post(
                "/v1/alerts/batch", json={"alerts": bodies[s : s + 500]}, headers=tok["al-cert"]
            )
            assert r.status == 200
            results = (await r.json())["results"]
            accepted += sum(x.get("status") in ("created", "corroborated") for x in results)
        out = {"hidden": hidden, "visible": visible, "repeats": repeats, "median_ms": {},
               "posted": len(bodies), "accepted": accepted}  # fmt: skip
        for who in ("factcheck-ba", "me-cert"):
            for q in ("limit=50", "sort=spread&limit=50", "fact_checked=false&sort=spread",
                      "include=story_id&limit=50"):  # fmt: skip
                times = []
                for _ in range(repeats):
                    t = time.perf_counter()
                    r = await c.get(f"/v1/clusters?{q}", headers=tok[who])
                    body = await r.json()
                    times.append((time.perf_counter() - t) * 1000)
                assert r.status == 200, body
                out["median_ms"][f"{who} {q}"] = round(statistics.median(times), 2)
                print(f"{who} {q}: median {statistics.median(times):.1f} ms "
                      f"({len(body['clusters'])} clusters)")  # fmt: skip
        return out


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=5000)
    parser.add_argument("--visible", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7)
    add_standard_args(parser, "100 hidden and 100 visible reports, 3 repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.hidden, args.visible, args.repeats = min(args.hidden, 100), min(args.visible, 100), 3
    result = asyncio.run(main(args.hidden, args.visible, args.repeats))
    out = write_json(result, args.out, "clusters")
    print(f"wrote {out}")
    return 0 if result["accepted"] == result["posted"] else 1


if __name__ == "__main__":
    raise SystemExit(cli())
