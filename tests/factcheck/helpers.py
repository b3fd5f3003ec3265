"""Fact-check bodies and scenes shared by the fact-check tests."""

from __future__ import annotations

import copy
from typing import Any

from tests.conftest import Api, disinfo_alert


def fact_check_body(fc_id: str = "fc-1", **changes: Any) -> dict[str, Any]:
    """A valid fact-check body with the checker's id `fc_id`, changed by `changes`."""
    body: dict[str, Any] = {
        "id": fc_id,
        "claim_reviewed": "NATO is massing troops near Zvečan",
        "rating": {"value": 1, "alternate_name": "False"},
        "url": "https://factcheck.example/2026/kfor-zvecan",
        "published_at": "2026-11-21T09:30:00Z",
        "language": "sr-Latn",
        "summary": "KFOR rotated one company; no build-up. The photos are from a 2019 exercise.",
        "appearances": ["https://t.example/channel/4411"],
    }
    body.update(changes)
    return copy.deepcopy(body)


async def post_fact_check(
    api: Api, node: str, hub_id: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    resp = await api.client.post(
        f"/v1/alerts/{hub_id}/fact-checks", json=body, headers=api.auth(node)
    )
    return resp.status, await resp.json()


async def cluster_of_two(api: Api, red_to: str = "me-cert") -> tuple[str, str, str]:
    """rs-cert posts a GREEN disinformation report, al-cert the same content RED to `red_to`:
    one cluster. Returns (green hub id, red hub id, cluster id)."""
    status, green = await api.post("rs-cert", disinfo_alert("d-green"))
    assert status == 201, green
    red = disinfo_alert("d-red", tlp="RED", share={"recipients": [red_to]})
    status, red_answer = await api.post("al-cert", red)
    assert status == 201, red_answer
    assert red_answer["cluster_id"] == green["cluster_id"]
    return green["hub_id"], red_answer["hub_id"], green["cluster_id"]
