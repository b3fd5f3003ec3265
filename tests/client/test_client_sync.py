"""SyncHubClient as a script uses it: plain blocking calls and a plain generator of events,
run in a worker thread while the real hub serves on loopback in the test's event loop."""

from __future__ import annotations

import asyncio
import itertools
import sys

import pytest

from alerthub_client import HubUnreachable, NotFound, SyncHubClient, ValidationFailed
from hub.store.embedded import free_port
from tests.client.hubs import hub_url
from tests.conftest import Api, unique_threat


def script(url: str, publisher: str, reader: str) -> dict[str, object]:
    """What an analyst's script does: post, read back, list, subscribe, pull, follow events."""
    out: dict[str, object] = {}
    with SyncHubClient(url, publisher) as pub, SyncHubClient(url, reader) as hub:
        sub = hub.subscribe({"kinds": ["threat"]})
        first = pub.post_alert(unique_threat("y-0"))
        progress: list[int] = []
        results = pub.post_alerts(
            [unique_threat(f"y-{i}") for i in range(1, 4)],
            batch_size=2,
            on_progress=progress.append,
        )
        out["statuses"] = [first["status"]] + [r["status"] for r in results]
        out["progress"] = progress
        out["got"] = pub.get_alert(first["hub_id"])["id"]
        out["page"] = len(pub.list_alerts(limit=2).items)
        out["all"] = [a["id"] for a in pub.iter_alerts(limit=3)]
        with pytest.raises(ValidationFailed):
            pub.post_alert({"id": "y-bad"})
        with pytest.raises(NotFound):
            pub.get_alert("01J0000000000000000000000Z")
        events = hub.events(sub["id"])
        out["events"] = [e.data["alert"]["id"] for e in itertools.islice(events, 4)]
        events.close()
        page = hub.pull(sub["id"], limit=2)
        out["pulled"] = [e["alert"]["id"] for e in hub.pull(sub["id"], after=page.next).items]
        out["subs"] = [s["id"] for s in hub.list_subscriptions()] == [sub["id"]]
        hub.delete_subscription(sub["id"])
    return out


async def test_sync_client_script(dapi: Api) -> None:
    """Each blocking call answers as HubClient's does; errors are the same typed exceptions;
    events() is a generator that closes its stream when closed."""
    await dapi.add_node("al-cert", "AL")
    await dapi.add_node("fc-ba", "BA", kind="civil-society", roles=("subscribe",))
    out = await asyncio.wait_for(
        asyncio.to_thread(script, hub_url(dapi), dapi.tokens["al-cert"], dapi.tokens["fc-ba"]), 20
    )
    assert out["statuses"] == ["created"] * 4 and out["progress"] == [2, 3]
    assert out["got"] == "y-0" and out["page"] == 2
    assert out["all"] == ["y-3", "y-2", "y-1", "y-0"]
    assert out["events"] == ["y-0", "y-1", "y-2", "y-3"]
    assert out["pulled"] == ["y-2", "y-3"]
    assert out["subs"] is True


def test_sync_client_unreachable_and_inside_a_running_loop() -> None:
    """No answer is HubUnreachable; the wrapper works where an event loop already runs."""
    url = f"http://127.0.0.1:{free_port()}"

    async def inside_a_loop() -> None:
        with SyncHubClient(url, timeout_s=2) as hub, pytest.raises(HubUnreachable):
            hub.status()

    asyncio.run(inside_a_loop())


LEFT_OPEN = """
import gc, sys, threading
from alerthub_client import SyncHubClient

url, token = sys.argv[1], sys.argv[2]
dropped = SyncHubClient(url, token)
dropped.status()
del dropped
gc.collect()
alive = [t.name for t in threading.enumerate() if t.name == "alerthub-client"]
assert alive == [], alive  # dropped unclosed: its thread and loop are gone
kept = SyncHubClient(url, token)
kept.status()
print("done")
"""  # and `kept` is left open at exit


async def test_a_client_never_closed_cleans_up_after_itself(dapi: Api) -> None:
    """A script that never closes its SyncHubClient (no `with`, no close()) ends quickly and
    quietly: no "Unclosed client session" at exit, and one dropped earlier leaves no thread."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LEFT_OPEN, hub_url(dapi), dapi.tokens["operator"],
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    assert out.strip() and b"Unclosed" not in err and b"Traceback" not in err, err.decode()
