"""Which of the event log's fan-out consumer groups an operator may remove: pure rules, no I/O
(`alerthub fanout-groups` reads the groups and carries out the plan).

A hub restarted with another ALERTHUB_FANOUT_SHARDS reads through new groups, which start where
the groups of the other split had all got to (fanout.ensure_group). Once every group of the
split in use exists, the others guide nothing and only clutter the log's group list, and the
oldest of them would make a later change of count start far back (safe, as a feed refuses what
it holds, but slow). A group that was read lately may still serve processes of the other count
in the middle of a rolling restart: it is kept until it has stood idle for a while.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.delivery.shards import GROUP_PREFIX, group_name, is_fanout_group


@dataclass(frozen=True, slots=True)
class GroupState:
    """A consumer group of the event log as Redis reports it."""

    name: str
    pending: int
    last_delivered: str
    idle_ms: int | None  # since its consumers last read; None: never read


@dataclass(frozen=True, slots=True)
class GroupVerdict:
    group: GroupState
    split: int | None  # the shard count of its name; None for the single group before shards
    in_use: bool  # a group of the split this hub uses
    removable: bool
    why: str


def split_of(name: str) -> int | None:
    """The shard count in a fan-out group's name ("fanout:<count>:<shard>"), None for the
    single group of hubs before shards ("fanout")."""
    if name == GROUP_PREFIX:
        return None
    parts = name.split(":")
    if len(parts) == 3 and parts[1].isdigit():
        return int(parts[1])
    return None


def plan(groups: list[GroupState], shards: int, min_idle_s: float) -> list[GroupVerdict]:
    """A verdict for each fan-out group (other groups of the log are left out), for a hub that
    uses `shards` shards: the groups of other splits are removable once every group of this
    split exists, each once it has stood idle at least `min_idle_s`."""
    fanout = sorted((g for g in groups if is_fanout_group(g.name)), key=lambda g: g.name)
    present = {g.name for g in fanout}
    wanted = {group_name(shards, shard) for shard in range(shards)}
    missing = len(wanted - present)
    verdicts = []
    for group in fanout:
        split = split_of(group.name)
        if group.name in wanted:
            verdicts.append(GroupVerdict(group, split, True, False, "in use"))
        elif missing:
            why = (
                f"kept: {missing} of this hub's {shards} groups are not made yet, and each "
                "will start where the other splits' groups have got to"
            )
            verdicts.append(GroupVerdict(group, split, False, False, why))
        elif group.idle_ms is not None and group.idle_ms < min_idle_s * 1000:
            why = (
                f"kept: read {group.idle_ms / 1000:.0f} s ago, maybe by a process of another "
                f"count still running (removable after {min_idle_s:g} s idle)"
            )
            verdicts.append(GroupVerdict(group, split, False, False, why))
        else:
            verdicts.append(GroupVerdict(group, split, False, True, "superseded: removable"))
    return verdicts
