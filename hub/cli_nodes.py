"""`alerthub nodes add|list|revoke`: the node registry, straight on Redis."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import AsyncIterator

from hub.cli_store import command_redis
from hub.ingest.validation import SchemaSet
from hub.nodes import NodeRegistry
from hub.settings import Settings
from hub.store.keys import Keys
from hub.store.scripts import Scripts


@contextlib.asynccontextmanager
async def _registry(settings: Settings) -> AsyncIterator[NodeRegistry]:
    """The node registry on the Redis the command works on (cli_store.command_redis)."""
    async with command_redis(settings) as client:
        yield NodeRegistry(client, Keys(settings.key_prefix), Scripts.register(client))


async def nodes_command(settings: Settings, args: argparse.Namespace) -> int:
    async with _registry(settings) as registry:
        if args.nodes_command == "add":
            return await _add_node(registry, args)
        if args.nodes_command == "list":
            for node in await registry.list():
                state = f"revoked {node.revoked_at}" if node.revoked_at else "active"
                print(
                    f"{node.id:<20} {node.country or '--':<3} {node.kind:<14} "
                    f"{','.join(sorted(node.roles)):<26} {state}"
                )
            return 0
        result = await registry.revoke(args.id)
        if result == "missing":
            print(f"alerthub: no node {args.id}", file=sys.stderr)
            return 1
        print(f"revoked {args.id}" if result == "revoked" else f"{args.id} was already revoked")
        return 0


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


async def _add_node(registry: NodeRegistry, args: argparse.Namespace) -> int:
    profile = {
        "id": args.id,
        "name": args.name,
        "country": args.country.upper(),
        "kind": args.kind,
        "roles": _split(args.roles),
        "defaults": {"withhold_from": _split(args.withhold_from)},
    }
    problems = SchemaSet().problems("node", profile)
    if problems:
        for p in problems:
            print(f"alerthub: {p.pointer or '/'}: {p.message} ({p.rule})", file=sys.stderr)
        return 2
    try:
        node, token = await registry.create(profile, registered_by="cli")
    except KeyError:
        print(f"alerthub: a node {args.id} exists (or existed)", file=sys.stderr)
        return 1
    print(f"added {node.id}; its token, shown only now:\n{token}")
    return 0
