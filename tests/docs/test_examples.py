"""The example alerts the docs hand to readers (schemas/examples/alert/valid/, docs/examples/)
post as they stand with the tokens of the demo nodes: each names a sender the demo has, and only
node ids the demo has."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from hub.demo.command import DEMO_NODES, node_body
from tests.conftest import EXAMPLES, Api
from tests.docs.blocks import ROOT

DEMO_IDS = frozenset(p["id"] for p in DEMO_NODES)
ACCEPTED = frozenset({"created", "corroborated", "updated", "unchanged"})


def example_alerts() -> list[tuple[str, dict[str, Any]]]:
    """(where, alert) for every valid example alert and every alert of docs/examples/."""
    found = []
    for path in sorted((EXAMPLES / "alert" / "valid").glob("*.json")):
        found.append((str(path.relative_to(ROOT)), json.loads(path.read_text("utf-8"))))
    for path in sorted((ROOT / "docs" / "examples").glob("*")):
        found.extend(_alerts_of(path))
    return found


def _alerts_of(path: Path) -> list[tuple[str, dict[str, Any]]]:
    where = str(path.relative_to(ROOT))
    text = path.read_text("utf-8")
    if path.suffix == ".ndjson":
        return [
            (f"{where}:{n}", json.loads(line))
            for n, line in enumerate(text.splitlines(), start=1)
            if line.strip()
        ]
    return [(where, json.loads(text))]


def sender_of(alert: dict[str, Any]) -> str | None:
    """The demo node whose id begins the alert's id (`rs-cert-2026-0142` is rs-cert's)."""
    return next((n for n in DEMO_IDS if alert["id"].startswith(f"{n}-")), None)


def test_examples_name_only_demo_nodes() -> None:
    """Each example's id starts with a demo node that may publish, `sender` agrees with it, and
    every node id in `share` is a demo node (country codes aside)."""
    publishers = {p["id"] for p in DEMO_NODES if "publish" in node_body(p)["roles"]}
    problems = []
    for where, alert in example_alerts():
        sender = sender_of(alert)
        if sender not in publishers:
            problems.append(f"{where}: {alert['id']} names no demo node that publishes")
        if alert.get("sender", sender) != sender:
            problems.append(f"{where}: sender {alert['sender']} but id {alert['id']}")
        share = alert.get("share", {})
        for name in [*share.get("recipients", []), *share.get("withhold_from", [])]:
            if not re.fullmatch(r"[A-Z]{2}", name) and name not in DEMO_IDS:
                problems.append(f"{where}: share names {name}, which the demo does not have")
    assert problems == []


async def test_examples_post_as_they_stand_with_demo_tokens(api: Api) -> None:
    """Every example alert, posted unchanged with its sender's demo token, is accepted."""
    for profile in DEMO_NODES:
        body = node_body(profile)
        await api.add_node(body["id"], body["country"], body["kind"], tuple(body["roles"]))
    refused = []
    for where, alert in example_alerts():
        sender = sender_of(alert)
        assert sender is not None, where
        status, answer = await api.post(sender, alert)
        if status not in (200, 201) or answer.get("status") not in ACCEPTED:
            refused.append(f"{where} as {sender}: {status} {answer}")
    assert refused == []
