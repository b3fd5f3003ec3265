"""Precision and recall of claim similarity on the labelled set, per kind of variant, and what
it costs per claim.

    .venv/bin/python -m benchmarks.claims.evaluate [--threshold 0.5] [--quick] [--out PATH]

A pair counts as linked exactly when the hub would link two alerts carrying its two claims:
they share an index score (an LSH band or an entity pair: the only way the hub finds a
candidate) and their best claim match reaches the threshold (hub.ingest.similarity.signature).
Prints a table and writes benchmarks/results/claims-<UTC time>.json, or --out (--quick changes
nothing: the whole set takes seconds already). Goals (issue 20): recall
>= 0.95 on edits and script changes, >= 0.6 on translations sharing two or more entities or
numbers, precision >= 0.97 overall.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from hub.ingest.similarity.signature import (  # noqa: E402
    DEFAULT_THRESHOLD,
    alert_claims,
    alert_match,
    index_scores,
    warm_up,
)

GOALS = {"edits": 0.95, "script": 0.95, "translations_2plus": 0.6, "precision": 0.97}


def alert(side: dict[str, str]) -> dict[str, Any]:
    return {"kind": "disinformation", "claims": [side]}


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def evaluate(pairs: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    # Warm the dictionaries and gazetteer first: their one-off load is not a claim's cost.
    warm_up()
    signatures: dict[tuple[str, str], tuple[list, set[str]]] = {}
    started = time.perf_counter()
    for pair in pairs:
        for key in ("a", "b"):
            side = pair[key]
            ident = (side["text"], side["language"])
            if ident not in signatures:
                claims = alert_claims(alert(side))
                signatures[ident] = (claims, set(index_scores(claims)))
    cold_us = (time.perf_counter() - started) / max(1, len(signatures)) * 1e6
    # Again, every word now seen once: the cost once a desk's vocabulary recurs.
    started = time.perf_counter()
    for text, language in signatures:
        index_scores(alert_claims(alert({"text": text, "language": language})))
    cost_us = (time.perf_counter() - started) / max(1, len(signatures)) * 1e6
    by_kind: dict[str, dict[str, int]] = defaultdict(lambda: {"tp": 0, "fp": 0, "fn": 0, "tn": 0})
    by_group: dict[str, dict[str, int]] = defaultdict(lambda: {"tp": 0, "fp": 0, "fn": 0, "tn": 0})
    mistakes = []
    for pair in pairs:
        a_claims, a_scores = signatures[(pair["a"]["text"], pair["a"]["language"])]
        b_claims, b_scores = signatures[(pair["b"]["text"], pair["b"]["language"])]
        found = bool(a_scores & b_scores) and alert_match(a_claims, b_claims, threshold)
        linked = bool(found)
        outcome = ("tp" if linked else "fn") if pair["label"] else ("fp" if linked else "tn")
        by_kind[pair["kind"]][outcome] += 1
        by_group[pair["group"]][outcome] += 1
        if outcome in ("fp", "fn"):
            mistakes.append({"outcome": outcome, "kind": pair["kind"], "a": pair["a"]["text"],
                             "b": pair["b"]["text"],
                             "match": found.as_json() if found else None})  # fmt: skip
    totals = {k: sum(c[k] for c in by_kind.values()) for k in ("tp", "fp", "fn", "tn")}
    return {
        "threshold": threshold,
        "pairs": len(pairs),
        "claims": len(signatures),
        "cost_per_claim_us": round(cost_us, 1),
        "cost_per_claim_first_sight_us": round(cold_us, 1),
        "precision": _ratio(totals["tp"], totals["tp"] + totals["fp"]),
        "recall": _ratio(totals["tp"], totals["tp"] + totals["fn"]),
        "by_group": {g: _figures(c) for g, c in sorted(by_group.items())},
        "by_kind": {k: _figures(c) for k, c in sorted(by_kind.items())},
        "totals": totals,
        "mistakes": mistakes,
    }


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 3) if b else None


def _figures(c: dict[str, int]) -> dict[str, Any]:
    positives = c["tp"] + c["fn"]
    if positives:
        return {**c, "recall": _ratio(c["tp"], positives)}
    return {**c, "false_link_rate": _ratio(c["fp"], c["fp"] + c["tn"])}


def goals_met(report: dict[str, Any]) -> dict[str, bool]:
    met = {"precision": (report["precision"] or 0) >= GOALS["precision"]}
    for group in ("edits", "script", "translations_2plus"):
        met[group] = (report["by_group"][group]["recall"] or 0) >= GOALS[group]
    return met


def summary(report: dict[str, Any]) -> str:
    lines = [
        f"{report['pairs']} pairs, {report['claims']} claims, threshold {report['threshold']}",
        f"precision {report['precision']}  recall {report['recall']}  "
        f"cost per claim (signature and index scores): {report['cost_per_claim_us']} µs, "
        f"{report['cost_per_claim_first_sight_us']} µs when every word is new to the process",
        "",
        f"{'kind':24} {'tp':>4} {'fn':>4} {'fp':>4} {'tn':>4}  recall / false links",
    ]
    for name, figures in [*report["by_group"].items(), ("", None), *report["by_kind"].items()]:
        if figures is None:
            lines.append("")
            continue
        rate = figures.get("recall", figures.get("false_link_rate"))
        lines.append(
            f"{name:24} {figures['tp']:4} {figures['fn']:4} {figures['fp']:4} {figures['tn']:4}"
            f"  {rate}"
        )
    lines.append("")
    lines.append("goals met: " + json.dumps(report["goals_met"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--pairs", type=Path, default=HERE / "pairs.jsonl")
    parser.add_argument("--out", type=Path, default=None, help="JSON result path")
    parser.add_argument(
        "--quick", action="store_true", help="accepted for the smoke run: the set takes seconds"
    )
    parser.add_argument("--mistakes", action="store_true", help="print every wrong answer")
    args = parser.parse_args(argv)
    report = evaluate(load(args.pairs), args.threshold)
    report["goals"] = GOALS
    report["goals_met"] = goals_met(report)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or HERE.parent / "results" / f"claims-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, ensure_ascii=False, indent=1), "utf-8")
    print(summary(report))
    if args.mistakes:
        for m in report["mistakes"]:
            print(json.dumps(m, ensure_ascii=False))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
