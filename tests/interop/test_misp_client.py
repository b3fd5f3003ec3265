"""The client's MISP import: `HubClient.post_misp_events` splits a long list into requests and
counts indexes and pointers in the whole list; `alerthub-client post --format misp FILE` posts a
file of MISP events and prints a line per event (and what was skipped), against a running hub."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import Any

from alerthub_client.client import HubClient
from tests.conftest import Api


def event(number: int, **changes: Any) -> dict[str, Any]:
    body = {
        "uuid": str(uuid.uuid4()),
        "info": f"Event {number}",
        "date": "2026-11-21",
        "distribution": "1",
        "Tag": [{"name": "tlp:green"}],
        "Attribute": [{"type": "domain", "value": f"e{number}.misp-client.example"}],
    }
    body.update(changes)
    return {"Event": body}


async def test_post_misp_events_in_several_requests(api: Api) -> None:
    """Five events in requests of two: five results in order, the refused one's pointer counted
    in the whole list."""
    await api.add_node("al-cert", "AL")
    events = [event(n) for n in range(5)]
    events[3] = event(3, distribution="4")
    async with HubClient(str(api.client.make_url("")).rstrip("/"), api.tokens["al-cert"]) as hub:
        results = await hub.post_misp_events({"response": events}, batch_size=2)
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert [r["status"] for r in results] == ["created"] * 3 + ["rejected", "created"]
    assert results[3]["pointer"] == "/3/Event"
    assert results[3]["error"]["details"][0]["pointer"] == "/3/Event/distribution"


async def test_the_cli_posts_a_file_of_misp_events(api: Api, tmp_path: Path) -> None:
    """`post --format misp` prints created, rejected with the pointer, and skipped lines; it
    exits 1 when an event was rejected."""
    await api.add_node("al-cert", "AL")
    extra = {"type": "text", "value": "analyst note"}
    good = event(1)
    good["Event"]["Attribute"].append(extra)
    path = tmp_path / "events.json"
    path.write_text(json.dumps({"response": [good, event(2, distribution="0")]}))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "alerthub_client.cli", "post", "--format", "misp", str(path),
        "--url", str(api.client.make_url("")).rstrip("/"), "--token", api.tokens["al-cert"],
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    lines = out.decode().splitlines()
    assert proc.returncode == 1, (out, err)
    assert lines[0].startswith(f"{path}[0]\tcreated\t")
    assert (
        lines[1]
        == "    skipped /0/Event/Attribute/1: a text attribute has no field in a threat alert"
    )
    assert lines[2].startswith(f"{path}[1]\trejected\tvalidation_failed")
    assert lines[3].startswith("    /1/Event/distribution (distribution): distribution 0 keeps")
