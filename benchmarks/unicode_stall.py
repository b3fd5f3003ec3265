"""CPU stall by Unicode expansion: a batch of claims made of U+FDFA (which NFKC turns into 18
characters) posted to a real hub, while /healthz is polled on another connection.

    .venv/bin/python -m benchmarks.unicode_stall [--runs 3] [--shapes many,large,at_limit,short]
        [--filler fdfa|cyrillic] [--quick] [--out PATH]

Starts, in a temporary folder, a redis-server and one hub process (`python -m hub serve`), adds
a publishing node, then for each shape and run posts one batch of such claims to
`POST /v1/alerts/batch` and, meanwhile, GETs /healthz back to back on its own connection.

Shapes (each just under the 4 MiB batch limit; about 3.7 MB of claim text but for `short`):
- many: 500 alerts (the batch's cap), one claim of ~7.4 KB (~2,460 U+FDFA) each;
- large: 3 alerts of up to 100 claims of 5,000 U+FDFA (~1.5 MB an alert: over the 256 KiB
  per-alert limit, which the batch route did not apply);
- at_limit: alerts of 17 such claims, each alert just under the 256 KiB per-alert limit;
- short: 500 alerts of 100 claims of 45 bytes (15 U+FDFA), the most claims a batch carries.
`--filler cyrillic` fills the same bytes with ordinary Serbian Cyrillic instead, for comparison.

Per run: the batch's round trip (the handler's time: upload, parse, every alert, answer), the
hub process's CPU seconds over it, the worst and median /healthz latency polled during it, and
the results' statuses (`outcomes`, beside `alerts` in the batch). Writes
benchmarks/results/unicode_stall-<filler>-<UTC time>.json, or --out (runs and medians) and prints
a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import orjson

if not __package__:  # run as a file (python benchmarks/unicode_stall.py): the repository on path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.kit.load import register_node
from benchmarks.kit.measurement import cpu_seconds
from benchmarks.kit.processes import Stack, hub_env
from benchmarks.kit.report import add_standard_args, git, write_json

OPERATOR = "bench-operator-unicode-stall"
BATCH_LIMIT = 4 * 1024 * 1024
TARGET_BYTES = 3_700_000  # of claim text, as in the finding
EXPANDING = "\ufdfa"  # ARABIC LIGATURE SALLALLAHOU ALAYHE WASALLAM: 18 characters under NFKC
CLAIM_MAX = 5000  # characters, the schema's maxLength of a claim's text
SHAPES = ("many", "large", "at_limit", "short")


FILLERS = {
    "fdfa": EXPANDING,
    # The same bytes of ordinary text, for comparison: Serbian Cyrillic, two bytes a letter.
    "cyrillic": "НАТО гомила трупе код Звечана, љубав њива џак ђак ћуп шума. ",
}


def _text(filler: str, nbytes: int, tag: str) -> str:
    """`tag`, " " and `filler` repeated to about `nbytes` bytes of UTF-8. The tag comes first,
    where a cut normalisation keeps it, so that every claim and alert is new content."""
    body = nbytes - len(tag) - 1
    per_char = len(filler.encode()) / len(filler)
    chars = max(1, min(int(body / per_char), CLAIM_MAX - len(tag) - 1))
    return tag + " " + (filler * (chars // len(filler) + 1))[:chars].rstrip()


def _alert(alert_id: str, tag: str, claim_bytes: list[int], filler: str) -> dict[str, Any]:
    return {
        "id": alert_id,
        "kind": "disinformation",
        "title": "Unicode expansion probe",
        "severity": "low",
        "tlp": "GREEN",
        "observed_at": "2026-11-20T08:15:00Z",
        "claims": [
            {"text": _text(filler, n, f"{tag}.{i}"), "language": "ar"}
            for i, n in enumerate(claim_bytes)
        ],
    }


def batch_body(
    shape: str, run: str, filler: str, target: int = TARGET_BYTES
) -> tuple[bytes, int, int]:
    """The batch's body, how many bytes of claim text it carries, and how many alerts."""
    filler = FILLERS[filler]
    per_char = len(filler.encode()) / len(filler)
    claim_max = int(CLAIM_MAX * per_char)  # bytes of the longest claim the schema allows
    if shape == "many":
        plan = [[target // 500]] * 500
    elif shape == "large":
        left = target
        plan = []
        while left > 0:
            claims = min(100, -(-left // claim_max))
            plan.append([claim_max] * claims)
            left -= claims * claim_max
    elif shape == "at_limit":
        plan = [[claim_max] * 17] * -(-target // (17 * claim_max))
    elif shape == "short":
        # 500 alerts of 100 short claims: 50,000 claims, the most a batch can carry.
        plan = [[45] * 100] * 500
    else:
        raise ValueError(shape)
    alerts = [
        _alert(f"{shape}-{run}-{i}", f"{run}{i}", claims, filler) for i, claims in enumerate(plan)
    ]
    body = orjson.dumps({"alerts": alerts})
    if len(body) > BATCH_LIMIT:
        raise RuntimeError(f"{shape}: the batch is {len(body)} bytes, over {BATCH_LIMIT}")
    claim_bytes = sum(len(c["text"].encode()) for a in alerts for c in a["claims"])
    return body, claim_bytes, len(alerts)


async def poll_health(base_url: str, stop: asyncio.Event, latencies: list[float]) -> None:
    """GET /healthz back to back on one connection of its own, until `stop`."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        while not stop.is_set():
            started = time.perf_counter()
            async with session.get(f"{base_url}/healthz") as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"/healthz answered {resp.status}")
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.005)


async def one_run(base_url: str, hub_pid: int, token: str, body: bytes) -> dict[str, Any]:
    latencies: list[float] = []
    stop = asyncio.Event()
    poller = asyncio.create_task(poll_health(base_url, stop, latencies))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    try:
        await asyncio.sleep(0.2)  # the poller's baseline
        baseline = len(latencies)
        async with aiohttp.ClientSession() as session:
            cpu_before = cpu_seconds(hub_pid)
            started = time.perf_counter()
            async with session.post(
                f"{base_url}/v1/alerts/batch", data=body, headers=headers
            ) as resp:
                answer = await resp.read()
            elapsed = time.perf_counter() - started
            cpu = cpu_seconds(hub_pid) - cpu_before
        await asyncio.sleep(0.05)
    finally:
        stop.set()
        await poller
    if resp.status != 200:
        raise RuntimeError(f"the batch answered {resp.status}: {answer[:300]!r}")
    during = latencies[baseline:] or [0.0]
    results = orjson.loads(answer)["results"]
    outcomes = Counter(r["status"] if "error" not in r else r["error"]["error"] for r in results)
    return {
        "batch_s": round(elapsed, 3),
        "hub_cpu_s": round(cpu, 3),
        "healthz_max_ms": round(max(during) * 1000, 1),
        "healthz_median_ms": round(statistics.median(during) * 1000, 2),
        "healthz_polls": len(during),
        "outcomes": dict(outcomes),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--filler", choices=sorted(FILLERS), default="fdfa")
    parser.add_argument(
        "--target-bytes", type=int, default=TARGET_BYTES, help="bytes of claim text a batch carries"
    )
    add_standard_args(parser, "1 run of the `many` shape with 200 KB of claim text")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.shapes, args.target_bytes = 1, "many", min(args.target_bytes, 200_000)
    shapes = [s for s in args.shapes.split(",") if s]
    report: dict[str, Any] = {
        "benchmark": "unicode_stall",
        "filler": args.filler,
        "commit": git("rev-parse", "--short", "HEAD"),
        "python": sys.version.split()[0],
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "target_bytes": args.target_bytes,
        "shapes": {},
    }
    stamp = dt.datetime.now(dt.UTC).strftime("%H%M%S")  # fresh content on every invocation
    with tempfile.TemporaryDirectory(prefix="alerthub-unicode-") as tmp:
        stack = Stack.start(Path(tmp) / "stack", lambda url: hub_env(url, OPERATOR, "warning"))
        try:
            base_url, hub_pid = stack.hub.base_url, stack.hub.process.pid
            token = asyncio.run(register_node(base_url, OPERATOR))
            for shape in shapes:
                runs = []
                for run in range(args.runs):
                    body, claim_bytes, alerts = batch_body(
                        shape, f"{stamp}{run}", args.filler, args.target_bytes
                    )
                    figures = asyncio.run(one_run(base_url, hub_pid, token, body))
                    figures.update(body_bytes=len(body), claim_bytes=claim_bytes, alerts=alerts)
                    runs.append(figures)
                    print(shape, run, figures, flush=True)
                report["shapes"][shape] = {
                    "runs": runs,
                    "median": {
                        key: statistics.median(r[key] for r in runs)
                        for key in ("batch_s", "hub_cpu_s", "healthz_max_ms")
                    },
                }
        finally:
            stack.stop()
    path = write_json(report, args.out, f"unicode_stall-{args.filler}")
    for shape, figures in report["shapes"].items():
        print(f"{shape}: median {figures['median']}")
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
