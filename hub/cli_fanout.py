"""`alerthub fanout-groups [--prune]`: the fan-out's consumer groups on the event log, and the
removal of those a change of ALERTHUB_FANOUT_SHARDS left behind (delivery/fanout_groups.py)."""

from __future__ import annotations

import argparse

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from hub.cli_store import command_redis
from hub.delivery.fanout import CONSUMER
from hub.delivery.fanout_groups import GroupState, GroupVerdict, plan
from hub.settings import Settings
from hub.store.keys import Keys


async def fanout_groups_command(settings: Settings, args: argparse.Namespace) -> int:
    """0: listed, or every superseded group removed; 1: --prune kept some (each says why)."""
    events = Keys(settings.key_prefix).events
    async with command_redis(settings) as client:
        verdicts = plan(await _group_states(client, events), settings.fanout_shards, args.min_idle)
        in_use = [v for v in verdicts if v.in_use]
        others = [v for v in verdicts if not v.in_use]
        print(
            f"this hub's split: {settings.fanout_shards} shards, {len(in_use)} groups made,"
            f" {sum(v.group.pending for v in in_use)} entries read and not yet acknowledged"
        )
        if not others:
            print("no groups of another split")
            return 0
        for verdict in others:
            print(_describe(verdict))
        if not args.prune:
            removable = sum(v.removable for v in others)
            print(f"{removable} of {len(others)} removable: run again with --prune to remove them")
            return 0
        kept = 0
        for verdict in others:
            if verdict.removable:
                await client.xgroup_destroy(events, verdict.group.name)
                print(f"removed {verdict.group.name}")
            else:
                kept += 1
        return 1 if kept else 0


def _describe(verdict: GroupVerdict) -> str:
    group = verdict.group
    split = "before shards" if verdict.split is None else f"{verdict.split} shards"
    return (
        f"{group.name:<20} {split:<14} read to {group.last_delivered},"
        f" {group.pending} pending; {verdict.why}"
    )


async def _group_states(client: Redis, events: str) -> list[GroupState]:
    try:
        groups = await client.xinfo_groups(events)
    except ResponseError:  # no event log yet
        return []
    states = []
    for group in groups:
        name = _text(group["name"])
        consumers = await client.xinfo_consumers(events, name) if group["consumers"] else []
        idle = [int(c["idle"]) for c in consumers if _text(c["name"]) == CONSUMER]
        states.append(
            GroupState(
                name=name,
                pending=int(group["pending"]),
                last_delivered=_text(group["last-delivered-id"]),
                idle_ms=min(idle) if idle else None,
            )
        )
    return states


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
