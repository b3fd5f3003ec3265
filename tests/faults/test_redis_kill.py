"""Redis SIGKILLed under load, then restarted on the same files and port, under a real hub
process: every alert that got a 2xx is there with its event and feed entries; posts during the
outage get 503 with the API's error body; a retry of an unanswered post stores it exactly once;
the hub recovers without a restart.

What the append-only file promises (Redis 6.2, aof.c flushAppendOnlyFile): the commands of one
event-loop turn are written to the file with one write(2) before the replies go out, so a killed
*process* loses nothing it acknowledged, with one exception under `everysec`: while a background
fsync is still running, the write may be postponed for up to 2 s and the replies sent meanwhile.
Under `always` the write and an fsync come before any reply. An OS crash or power loss can lose
what was written but not yet fsynced: up to about a second (2 s when fsyncs are slow) under
`everysec`, nothing acknowledged under `always` (on a disk that honours fsync).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from redis.asyncio import Redis

from tests.faults.redis_checks import (
    CONCURRENCY,
    Setup,
    SlowReceiver,
    backlog_in_delivery,
    check_everything,
    make_alert,
    post_all,
    repeat_all,
)
from tests.faults.redis_harness import Attempt, HubClient, Load, OwnRedis, wait_for
from tests.receivers import Receiver

OUTAGE_S = 1.5  # long enough for the fan-out and delivery loops to meet the outage, not just posts
OUTAGE_ANSWER_S = 2.0  # a post while Redis is down is refused at once, not after a timeout
RECOVERY_S = 20.0


async def outage_check(client: HubClient) -> None:
    """While Redis is down: readyz 503 with the error body, healthz still 200."""
    ready = await client.request("GET", "/readyz")
    assert ready.status == 503 and ready.body["error"] == "unavailable", ready
    assert (await client.request("GET", "/healthz")).status == 200


def check_answers(
    attempts: list[Attempt], killed: float, restarting: float, recovered: float
) -> list[Attempt]:
    """Every post got an HTTP answer, 201 or 503, never 500 and never a hang; those sent and
    answered wholly inside the outage got 503 `unavailable`, at once; every one sent once
    readyz said 200 again was stored. Returns the posts whose outcome the client does not know
    (every non-2xx)."""
    statuses = Counter(a.answer.status for a in attempts)
    assert set(statuses) <= {201, 503}, statuses
    for attempt in attempts:
        if attempt.answer.status == 503:
            body = attempt.answer.body
            assert body["error"] == "unavailable" and isinstance(body["message"], str), body
    during = [a for a in attempts if a.answer.started >= killed and a.answer.ended <= restarting]
    assert during, "no post was made during the outage"
    assert all(a.answer.status == 503 for a in during), Counter(a.answer.status for a in during)
    slowest = max(a.answer.seconds for a in during)
    assert slowest < OUTAGE_ANSWER_S, f"a post during the outage took {slowest:.2f} s"
    late = Counter(a.answer.status for a in attempts if a.answer.started >= recovered)
    assert set(late) == {201}, f"answers after readyz said 200 again: {late}"
    return [a for a in attempts if not a.answer.ok]


async def settle_unknowns(
    client: HubClient, unknown: list[Attempt]
) -> tuple[dict[str, str], Counter[str]]:
    """Retry every post whose outcome was unknown: the answer is `created` (201) if the first
    try stored nothing, or `unchanged` (200) if it did (API.md: the same id and revision again);
    a second retry is `unchanged` with the same hub id. Returns alert id -> hub id, and how
    many first retries were created and unchanged."""
    first = await repeat_all(client, unknown)
    outcomes = Counter((a.status, a.body.get("status")) for a in first)
    assert set(outcomes) <= {(201, "created"), (200, "unchanged")}, outcomes
    for attempt, retry in zip(unknown, first, strict=True):
        if retry.body["status"] == "unchanged":
            # The first try was stored although its answer was a 503: that answer must not
            # have said that nothing was stored.
            assert "nothing was stored" not in attempt.answer.body["message"], attempt.answer
    second = await repeat_all(client, unknown)
    for before, after in zip(first, second, strict=True):
        assert (after.status, after.body["status"]) == (200, "unchanged"), after
        assert after.body["hub_id"] == before.body["hub_id"]
    hub_ids = {a.alert["id"]: r.body["hub_id"] for a, r in zip(unknown, first, strict=True)}
    return hub_ids, Counter(status for _, status in outcomes.elements())


async def check_acknowledged_kept(client: HubClient, acknowledged: list[Attempt]) -> None:
    """Each 2xx before, during or after the outage is still known: the same post again is
    `unchanged` with the hub id it was given."""
    repeats = await repeat_all(client, acknowledged)
    for attempt, repeat in zip(acknowledged, repeats, strict=True):
        assert (repeat.status, repeat.body["status"]) == (200, "unchanged"), (attempt, repeat)
        assert repeat.body["hub_id"] == attempt.answer.body["hub_id"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("store", ["everysec", "always"], indirect=True)
async def test_sigkill_redis_under_post_load(
    store: OwnRedis, client: HubClient, redis: Redis, receivers: list[Receiver]
) -> None:
    """Redis SIGKILLed while 24 clients post: each 2xx survives with its event and exactly one
    entry per matching feed, outage posts get 503 at once, retries store exactly once, and the
    hub is ready again without a restart."""
    receivers.append(await SlowReceiver().start())
    setup = await Setup(client, receivers[-1]).create()
    load = Load(client, make_alert, CONCURRENCY)
    await load.until(lambda a: sum(x.answer.ok for x in a) >= 200, 30.0, "200 stored posts")

    store.kill()
    killed = time.monotonic()
    await outage_check(client)
    await load.until(
        lambda a: (
            time.monotonic() - killed >= OUTAGE_S
            and sum(x.answer.started >= killed for x in a) >= 100
        ),
        10.0,
        "posts during the outage",
    )
    restarting = time.monotonic()
    await asyncio.to_thread(store.start)
    await wait_for(client.ready, RECOVERY_S, "readyz 200 after the restart")
    recovered = time.monotonic()
    await load.until(
        lambda a: sum(x.answer.ok and x.answer.started >= recovered for x in a) >= 100,
        30.0,
        "posts stored after the restart",
    )
    attempts = await load.stop()

    unknown = check_answers(attempts, killed, restarting, recovered)
    acknowledged = [a for a in attempts if a.answer.ok]
    await check_acknowledged_kept(client, acknowledged)
    settled, retried = await settle_unknowns(client, unknown)
    stored = {a.alert["id"]: (a.node, a.answer.body["hub_id"]) for a in acknowledged}
    stored |= {a.alert["id"]: (a.node, settled[a.alert["id"]]) for a in unknown}
    assert len(stored) == len(attempts)
    critical = {h for a, (_, h) in stored.items() if int(a.split("-")[1]) % 3 == 0}
    repeats = await check_everything(client, redis, setup, stored, critical)
    print(
        f"\n[redis-kill fsync={store.fsync}] faults={store.faults} posts={len(attempts)}"
        f" 2xx={len(acknowledged)} unknown={len(unknown)} retried={dict(retried)}"
        f" requests={client.made} failed={client.failed} webhook-repeats={repeats}"
        f" retry-after={sorted({str(a.answer.retry_after) for a in unknown})}"
        f" slowest-answer={max(a.answer.seconds for a in attempts):.2f}s"
    )


@pytest.mark.timeout(90)
async def test_sigkill_redis_mid_delivery(
    store: OwnRedis, client: HubClient, redis: Redis, receivers: list[Receiver]
) -> None:
    """Redis SIGKILLed while a backlog is being fanned out and pushed to a webhook: after the
    restart every alert reaches the webhook at least once and each feed holds it exactly once."""
    receiver, setup, stored = await backlog_in_delivery(client, receivers, 400)
    store.kill()
    delivered_at_kill = len({d.event["hub_id"] for d in receiver.deliveries})
    assert delivered_at_kill < len(stored), "delivery finished before Redis was killed"
    await outage_check(client)
    await asyncio.sleep(OUTAGE_S)  # the outage itself, not a wait for a race
    await asyncio.to_thread(store.start)
    await wait_for(client.ready, RECOVERY_S, "readyz 200 after the restart")
    stored |= await post_all(client, range(400, 450))
    critical = {h for a, (_, h) in stored.items() if int(a.split("-")[1]) % 3 == 0}
    repeats = await check_everything(client, redis, setup, stored, critical)
    print(
        f"\n[redis-kill mid-delivery] faults={store.faults} delivered-at-kill={delivered_at_kill}"
        f"/{len(stored) - 50} requests={client.made} failed={client.failed}"
        f" webhook-repeats={repeats}"
    )
