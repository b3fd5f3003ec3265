"""`alerthub fanout-groups [--prune]` on a real Redis: the groups a change of shard count left
behind are listed and removed, this hub's groups and other tools' groups never, and a group of
another count is kept while this hub's split is incomplete or while it is still being read."""

from __future__ import annotations

import re
from pathlib import Path

import redis

from hub.store.keys import Keys
from tests.test_cli import run_cli

EVENTS = Keys().events


def groups(client: redis.Redis) -> set[str]:
    return {g["name"].decode() for g in client.xinfo_groups(EVENTS)}


def test_prune_removes_only_idle_groups_of_another_split(redis_url: str, tmp_path: Path) -> None:
    env = {"ALERTHUB_REDIS_URL": redis_url, "ALERTHUB_FANOUT_SHARDS": "4"}
    client = redis.Redis.from_url(redis_url)
    try:
        client.xadd(EVENTS, {"type": "created"})
        for name in ("fanout", "fanout:2:0", "fanout:2:1", "other-tool"):
            client.xgroup_create(EVENTS, name, id="0")
        for shard in range(3):  # one of this hub's four groups is not made yet
            client.xgroup_create(EVENTS, f"fanout:4:{shard}", id="0")
        client.xreadgroup("fanout:2:1", "fanout", {EVENTS: ">"}, count=1)  # read just now

        early = run_cli("fanout-groups", "--prune", env=env, cwd=tmp_path)
        assert early.returncode == 1, early.stderr
        assert "3 groups made" in early.stdout and "1 of this hub's 4 groups are not made" in (
            early.stdout
        )
        assert "removed" not in early.stdout and "fanout" in groups(client)

        client.xgroup_create(EVENTS, "fanout:4:3", id="0")
        listed = run_cli("fanout-groups", env=env, cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        assert "2 of 3 removable" in listed.stdout
        assert "other-tool" not in listed.stdout
        assert "fanout:2:1" in listed.stdout and "1 pending" in listed.stdout

        pruned = run_cli("fanout-groups", "--prune", env=env, cwd=tmp_path)
        assert pruned.returncode == 1, pruned.stderr  # one kept: read just now
        assert set(pruned.stdout.split("removed ")[1:]) == {"fanout\n", "fanout:2:0\n"}
        assert re.search(r"^fanout:2:1 .* kept: read \d+ s ago", pruned.stdout, re.M)
        assert groups(client) == {f"fanout:4:{n}" for n in range(4)} | {"fanout:2:1", "other-tool"}

        last = run_cli("fanout-groups", "--prune", "--min-idle", "0", env=env, cwd=tmp_path)
        assert last.returncode == 0, last.stderr
        assert groups(client) == {f"fanout:4:{n}" for n in range(4)} | {"other-tool"}
        assert run_cli("fanout-groups", env=env, cwd=tmp_path).stdout.endswith(
            "no groups of another split\n"
        )
    finally:
        client.close()


def test_a_hub_without_an_event_log_has_no_groups(redis_url: str, tmp_path: Path) -> None:
    done = run_cli("fanout-groups", "--prune", env={"ALERTHUB_REDIS_URL": redis_url}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "64 shards, 0 groups made" in done.stdout and "no groups of another split" in done.stdout
