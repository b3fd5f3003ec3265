"""Every benchmark runs in its --quick mode, so that none can rot unnoticed again (issue 16:
fanout's SSE scenario had stopped running). Each is a subprocess, as a reader runs it; they run
side by side, and each check reads the JSON it wrote: that it ran and that nothing was lost.
No speed is asserted: this machine's speed is not the code's."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 150.0  # one benchmark's limit; the --quick runs take 3 to 20 s each alone
PARALLEL = 4


@dataclass(frozen=True)
class Bench:
    name: str
    argv: tuple[str, ...]
    needs: str | None = None  # an external tool on PATH


BENCHES = (
    Bench("ingest", ("-m", "benchmarks.ingest")),
    Bench("ingest-wrk", ("-m", "benchmarks.ingest", "--generator", "wrk"), needs="wrk"),
    Bench("fanout-webhook", ("-m", "benchmarks.fanout", "--scenario", "webhook")),
    # As a file, the way issue 16 found it broken: the script form must keep working too.
    Bench("fanout-sse", ("benchmarks/fanout.py", "--scenario", "sse")),
    Bench("listing", ("-m", "benchmarks.listing")),
    Bench("clusters", ("-m", "benchmarks.clusters")),
    Bench("unicode_stall", ("-m", "benchmarks.unicode_stall")),
    Bench("claims-evaluate", ("-m", "benchmarks.claims.evaluate")),
    Bench("claims-ingest", ("-m", "benchmarks.claims.ingest_compare")),
    Bench("taxii", ("-m", "benchmarks.taxii")),
    Bench("scale", ("-m", "benchmarks.scale")),
    Bench("scale-fanout", ("-m", "benchmarks.scale", "--part", "fanout")),
    Bench("scale-fanout-live", ("-m", "benchmarks.scale", "--part", "fanout-live")),
    Bench("misp_feed", ("-m", "benchmarks.misp_feed")),
    Bench("replicas_ack", ("-m", "benchmarks.replicas_ack")),
)


@dataclass
class Ran:
    returncode: int
    output: str
    seconds: float
    report: dict[str, Any] | None

    def explain(self) -> str:
        return f"exit {self.returncode} after {self.seconds:.0f} s:\n{self.output[-3000:]}"


def _run(bench: Bench, folder: Path) -> Ran:
    out = folder / f"{bench.name}.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTHUB_")}
    began = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, *bench.argv, "--quick", "--out", str(out)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
        code, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as e:
        code, output = -1, f"still running after {TIMEOUT_S} s: {e.output!r}"
    report = orjson.loads(out.read_bytes()) if out.exists() else None
    return Ran(code, output, time.monotonic() - began, report)


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Ran]:
    """Every benchmark whose tools are here, run once, PARALLEL at a time."""
    folder = tmp_path_factory.mktemp("benchmarks")
    runnable = [b for b in BENCHES if b.needs is None or shutil.which(b.needs)]
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        results = pool.map(lambda b: _run(b, folder), runnable)
        return {b.name: r for b, r in zip(runnable, results, strict=True)}


def _report(ran: dict[str, Ran], name: str) -> dict[str, Any]:
    bench = next(b for b in BENCHES if b.name == name)
    if name not in ran:
        pytest.skip(f"{bench.needs} is not installed (Debian: apt-get install {bench.needs})")
    result = ran[name]
    print(f"{name}: {result.seconds:.1f} s")
    assert result.returncode == 0, result.explain()
    assert result.report is not None, f"no JSON written; {result.explain()}"
    return result.report


def _ingest_lost_nothing(report: dict[str, Any]) -> None:
    assert {r["target"] for r in report["runs"]} == {"bare", "hub"}
    for run in report["runs"]:
        assert run["count"] > 0, run
        assert run["errors"] == 0, run
        assert run["not_created"] == 0, run
    assert report["goals"]["errors"] == 0


@pytest.mark.timeout(4 * TIMEOUT_S)
def test_ingest(ran: dict[str, Ran]) -> None:
    """ingest.py posts to the bare handler and the hub; every answer is a 2xx `created`."""
    _ingest_lost_nothing(_report(ran, "ingest"))


@pytest.mark.timeout(4 * TIMEOUT_S)
def test_ingest_with_wrk(ran: dict[str, Ran]) -> None:
    """ingest.py --generator wrk, where wrk is installed; every answer a 2xx `created`."""
    _ingest_lost_nothing(_report(ran, "ingest-wrk"))


@pytest.mark.timeout(4 * TIMEOUT_S)
@pytest.mark.parametrize("scenario", ["webhook", "sse"])
def test_fanout(ran: dict[str, Ran], scenario: str) -> None:
    """fanout.py: every accepted alert reaches every subscription exactly once."""
    report = _report(ran, f"fanout-{scenario}")
    (run,) = report["runs"]
    assert run["scenario"] == scenario
    assert run["alerts_accepted"] == run["alerts_posted"] > 0, run["publish_errors"]
    assert run["expected"] == run["alerts_accepted"] * run["subscriptions"]
    assert run["received"] == run["expected"], run["backlog_at_end"]
    assert (run["missing_at_end"], run["lost"], run["duplicates"], run["unexpected"]) == (
        0,
        0,
        0,
        0,
    )


@pytest.mark.timeout(4 * TIMEOUT_S)
def test_listing(ran: dict[str, Ran]) -> None:
    """listing.py: the hub accepts every alert, and each caller lists what it may see."""
    report = _report(ran, "listing")
    assert report["accepted"] == report["posted"] > 1
    assert report["listed"]["rs-cert limit=50"] == 1  # the one GREEN alert
    assert report["listed"]["me-cert limit=500"] == min(500, report["posted"])


@pytest.mark.timeout(4 * TIMEOUT_S)
def test_clusters(ran: dict[str, Ran]) -> None:
    """clusters.py: every report is accepted (created or corroborated) and timed queues exist."""
    report = _report(ran, "clusters")
    assert report["accepted"] == report["posted"] > 0
    assert report["median_ms"]


@pytest.mark.timeout(4 * TIMEOUT_S)
def test_unicode_stall(ran: dict[str, Ran]) -> None:
    """unicode_stall.py: every alert of each batch is created."""
    report = _report(ran, "unicode_stall")
    runs = [run for shape in report["shapes"].values() for run in shape["runs"]]
    assert runs
    for run in runs:
        assert run["outcomes"] == {"created": run["alerts"]}, run


@pytest.mark.timeout(4 * TIMEOUT_S)
def test_claims_evaluate(ran: dict[str, Ran]) -> None:
    """claims/evaluate.py: every labelled pair is judged once."""
    report = _report(ran, "claims-evaluate")
    assert report["pairs"] > 0
    assert sum(report["totals"].values()) == report["pairs"]


@pytest.mark.timeout(4 * TIMEOUT_S)
def test_claims_ingest(ran: dict[str, Ran]) -> None:
    """claims/ingest_compare.py: with similarity on and off, every answer is a 201."""
    report = _report(ran, "claims-ingest")
    assert report["not_created"] == {"on": 0, "off": 0}
    assert all(rate > 0 for mode in ("on", "off") for rate in report["runs"][mode])


@pytest.mark.timeout(4 * TIMEOUT_S)
def test_taxii(ran: dict[str, Ran]) -> None:
    """taxii.py: every alert is accepted, and the feed and both TAXII collections read them all."""
    report = _report(ran, "taxii")
    assert report["accepted"] == report["posted"] > 0
    assert report["read"] == dict.fromkeys(
        ("feed", "taxii_subscription", "taxii_visible"), report["posted"]
    )


@pytest.mark.timeout(4 * TIMEOUT_S)
def test_scale(ran: dict[str, Ran]) -> None:
    """scale.py: both worker counts and every role set-up ran; every post was created and every
    event reached every SSE stream."""
    report = _report(ran, "scale")
    assert {r["workers"] for r in report["ingest"]["runs"]} == {1, 2}
    for run in report["ingest"]["runs"]:
        assert run["count"] > 0 and run["errors"] == run["not_created"] == 0, run
    assert {r["setup"] for r in report["isolation"]["runs"]} == {"idle", "all", "split", "split3"}
    for run in report["isolation"]["runs"]:
        assert run["errors"] == 0 and run["events_received"] == run["events_expected"], run


@pytest.mark.timeout(4 * TIMEOUT_S)
def test_scale_fanout(ran: dict[str, Ran]) -> None:
    """scale.py --part fanout: every set-up drained its backlog, each alert into every feed
    once, the shards held as split among the delivery processes."""
    report = _report(ran, "scale-fanout")
    runs = report["fanout"]["runs"]
    assert [r["setup"] for r in runs] == ["shards1-d1", "d1", "d2"]
    for run in runs:
        assert run["alerts_created"] == run["alerts_posted"] > 0, run
        assert run["appends_total"] == run["appends_expected"], run
        assert sum(run["shards_held"]) == run["shards"] and run["status_caught_up"], run


@pytest.mark.timeout(4 * TIMEOUT_S)
def test_scale_fanout_live(ran: dict[str, Ran]) -> None:
    """scale.py --part fanout-live: 1, 8 and 64 shards each took posts at the rate, every alert
    created and in every feed, the CPU measured and compared with one shard's."""
    part = _report(ran, "scale-fanout-live")["fanout-live"]
    assert [r["setup"] for r in part["runs"]] == ["shards1", "shards8", "shards64"]
    for run in part["runs"]:
        assert run["alerts_created"] == run["alerts_posted"] > 0, run
        assert run["appends_total"] == run["appends_expected"], run
        assert run["window_s"] > 0 and run["hub_cpu_pct"] is not None, run
    assert set(part["ratios"]) == {"shards8_over_shards1", "shards64_over_shards1"}


def test_misp_feed(ran: dict[str, Ran]) -> None:
    """misp_feed.py: the manifest listed every alert the reader may see, as the pull feed did."""
    report = _report(ran, "misp_feed")
    assert report["alerts_visible"] > 0
    assert report["manifest"]["bytes"] > 0 and report["single_events"]["count"] > 0
    assert report["hashes"]["lines"] > 0


def test_replicas_ack(ran: dict[str, Ran]) -> None:
    """replicas_ack.py: both settings ran against the primary and its replica, and every post
    was answered 201 created (with MIN_REPLICAS_ACK=1 only once the replica had it)."""
    report = _report(ran, "replicas_ack")
    assert {r["min_replicas_ack"] for r in report["runs"]} == {0, 1}
    for run in report["runs"]:
        assert run["statuses"] and set(run["statuses"]) == {"201"}, run
        assert run["not_created"] == 0, run
