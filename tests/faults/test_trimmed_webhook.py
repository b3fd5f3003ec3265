"""A webhook endpoint that falls behind further than its feed keeps: delivery goes on from the
oldest event the feed still holds, and the events trimmed away unsent are counted and logged,
never skipped in silence (API.md: a gap is always signalled)."""

from __future__ import annotations

import dataclasses
from typing import Any

from redis.asyncio import Redis
from structlog.testing import capture_logs

from hub.app import create_app
from hub.ingest.validation import SchemaSet
from hub.settings import Settings
from hub.store.keys import Keys
from tests.conftest import Api, unique_threat
from tests.faults.cluster import Hook, wait_for

KEYS = Keys()
RETENTION = 5


async def test_webhook_behind_the_trim_point_skips_and_records_the_gap(
    aiohttp_client: Any, delivery_settings: Settings, schema_set: SchemaSet, redis_url: str
) -> None:
    """Held on its first event while 12 more arrive and the feed keeps 5: the endpoint then
    gets the 5 kept, the 7 trimmed are recorded as skipped, and nothing stalls or repeats."""
    settings = dataclasses.replace(delivery_settings, feed_retention=RETENTION)
    api = Api(await aiohttp_client(create_app(settings, schema_set)))
    redis = Redis.from_url(redis_url)
    hook = await Hook(hang=True).start()
    try:
        await api.add_node("al-cert", "AL")
        created = await api.subscribe("al-cert", {"type": "webhook", "url": hook.url})
        hook.secret = created["secret"]
        sub_id = created["id"]

        async def active() -> bool:
            return (await api.get("al-cert", f"/v1/subscriptions/{sub_id}"))[1][
                "status"
            ] == "active"

        await wait_for(active, 10, "the endpoint to be verified")
        with capture_logs() as logs:
            hub_ids = []
            for n in range(13):
                status, body = await api.post("al-cert", unique_threat(f"trim-{n}"))
                assert status == 201, body
                hub_ids.append(body["hub_id"])
                if n == 0:  # the first is held at the endpoint from here on
                    await hook.wait_for(lambda h: len(h.deliveries) == 1)

            async def trimmed() -> bool:
                state = await redis.hgetall(KEYS.feed_state(sub_id))
                return int(state.get(b"appended", 0)) == 13 and b"trimmed_upto" in state

            await wait_for(trimmed, 10, "the feed to hold the 13 events and trim them to 5")
            hook.release()
            kept = hub_ids[-RETENTION:]

            async def caught_up() -> bool:
                got = {e["hub_id"] for e in hook.received().values()}
                return got >= {hub_ids[0], *kept}

            await wait_for(caught_up, 10, "the kept events to reach the endpoint")
        received = hook.received()
        assert sorted(e["hub_id"] for e in received.values()) == sorted([hub_ids[0], *kept])
        assert len(hook.deliveries) == len(received)  # nothing sent twice
        delivery = await redis.hgetall(KEYS.delivery(sub_id))
        assert int(delivery[b"trimmed_unsent"]) == 13 - 1 - RETENTION, delivery
        warnings = [e for e in logs if e["event"] == "webhook_history_truncated"]
        assert [(w["subscription"], w["skipped"]) for w in warnings] == [(sub_id, 7)]
        assert await redis.zcard(KEYS.retries(sub_id)) == 0
    finally:
        await hook.stop()
        await redis.aclose()
