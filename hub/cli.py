"""`alerthub serve`, `alerthub demo` and `alerthub nodes add|list|revoke`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import secrets
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from aiohttp import web
from redis.asyncio import Redis

from hub import __version__
from hub.app import create_app
from hub.context import HUB
from hub.demo.command import DemoError, DemoOptions, register_demo_nodes, run_demo
from hub.demo.scenario import ScenarioError
from hub.ingest.validation import SchemaSet
from hub.logs import configure_logging, hide_literal
from hub.nodes import NodeRegistry
from hub.settings import Settings, SettingsError
from hub.store.embedded import EmbeddedRedis, EmbeddedRedisError, answers, shared_url
from hub.store.keys import Keys
from hub.store.scripts import Scripts


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alerthub", description="Regional alert-sharing hub")
    parser.add_argument("--version", action="version", version=f"alerthub {__version__}")
    parser.add_argument(
        "--env-file",
        type=Path,
        default=Path(".env"),
        help="a KEY=VALUE file read under the environment (default .env)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the hub")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--demo",
        action="store_true",
        help="add demo nodes for the six states and two fact-checkers; print tokens",
    )

    _add_demo_parser(commands)

    nodes = commands.add_parser("nodes", help="manage nodes").add_subparsers(
        dest="nodes_command", required=True
    )
    add = nodes.add_parser("add", help="add a node and print its token once")
    add.add_argument("id")
    add.add_argument("--name", required=True)
    add.add_argument("--country", required=True)
    add.add_argument("--kind", required=True, choices=["government", "civil-society"])
    add.add_argument(
        "--roles",
        default="publish,subscribe",
        help="comma-separated: publish, subscribe, fact-check, operator",
    )
    add.add_argument(
        "--withhold-from",
        default="",
        help="comma-separated node ids or country codes withheld by default",
    )
    nodes.add_parser("list", help="list nodes")
    revoke = nodes.add_parser("revoke", help="revoke a node's token at once")
    revoke.add_argument("id")
    return parser


def _add_demo_parser(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser(
        "demo",
        help="run a hub on a fresh embedded Redis and replay the Western Balkans scenario",
        description="Start a hub on an embedded Redis of its own (ALERTHUB_REDIS_URL is not "
        "used), register the six Western Balkan CERTs and two fact-checkers, subscribe each, "
        "replay the scenario step by step showing who received what and why the others did "
        "not, then keep the hub running until Ctrl-C. Exit 0 when every expectation held, "
        "1 when one did not, 2 for bad input, 130 when interrupted mid-scenario.",
    )
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8080, help="0: a free port (printed)")
    demo.add_argument(
        "--data-dir",
        type=Path,
        help="an empty or new folder for the Redis files (default: a temporary one, removed)",
    )
    demo.add_argument(
        "--no-wait",
        action="store_true",
        help="no pauses, and stop after the scenario (for CI)",
    )
    demo.add_argument(
        "--pause", type=float, default=1.5, help="seconds between steps (default 1.5)"
    )
    demo.add_argument(
        "--json", type=Path, dest="json_path", help="write what each partner received here"
    )
    demo.add_argument("--scenario", type=Path, help="a scenario file (default: the packaged one)")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env(env_file=args.env_file)
    except SettingsError as e:
        print(f"alerthub: {e}", file=sys.stderr)
        return 2
    if args.command == "demo":
        # The replay is the output: the hub's own log shows warnings and worse unless asked.
        level = "warning" if settings.log_level == "info" else settings.log_level
        configure_logging(level, secrets=[settings.bootstrap_token])
        return demo_command(settings, args)
    configure_logging(settings.log_level, secrets=[settings.bootstrap_token])
    try:
        if args.command == "serve":
            return serve(settings, args.host, args.port, args.demo)
        return asyncio.run(nodes_command(settings, args))
    except EmbeddedRedisError as e:
        print(f"alerthub: {e}", file=sys.stderr)
        return 1


def demo_command(settings: Settings, args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535 or args.pause < 0:
        print("alerthub demo: --port must be 0 to 65535 and --pause 0 or more", file=sys.stderr)
        return 2
    options = DemoOptions(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        wait=not args.no_wait,
        pause_s=args.pause,
        json_path=args.json_path,
        scenario_path=args.scenario,
    )
    try:
        return run_demo(settings, options)
    except (DemoError, ScenarioError) as e:
        print(f"alerthub demo: {e}", file=sys.stderr)
        return 2
    except EmbeddedRedisError as e:
        print(f"alerthub demo: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # before the hub was up to handle it
        print("alerthub demo: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # e.g. a startup hook failing on Redis: one line, never a traceback
        print(f"alerthub demo: the hub or replay failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


def serve(settings: Settings, host: str, port: int, demo: bool) -> int:
    embedded = None
    if settings.redis_url is None:
        embedded = EmbeddedRedis(settings.data_dir, settings.appendfsync)
        settings = dataclasses.replace(settings, redis_url=embedded.start())
        print(
            f"alerthub: embedded Redis at {embedded.url} (data in {embedded.data_dir})", flush=True
        )
    if demo and settings.bootstrap_token is None:
        token = "ah_op_" + secrets.token_urlsafe(24)
        settings = dataclasses.replace(settings, bootstrap_token=token)
        hide_literal(token)
    try:
        app = create_app(settings)
        # Everything built so far lives as long as the process: keep it out of the collector's
        # full passes, whose pauses would otherwise show in the latency tail.
        gc.freeze()
        if demo:
            app.on_startup.append(_print_demo_tokens)
        web.run_app(
            app,
            host=host,
            port=port,
            print=_announce(host, port),
            access_log=None,
            loop=new_event_loop(),
        )
    finally:
        if embedded is not None:
            embedded.close()
    return 0


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (its socket transports cost a fraction of asyncio's on the
    hot path), else the standard loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _announce(host: str, port: int):
    def announce(_message: str) -> None:
        print(f"alerthub: serving on http://{host}:{port} (Ctrl-C to stop)", flush=True)

    return announce


async def _print_demo_tokens(app: web.Application) -> None:
    hub = app[HUB]
    issued = await register_demo_nodes(hub.nodes)
    lines = ["", "Demo nodes (tokens are shown only now):"]
    lines.append(f"  {'operator':<14} {'--':<3} {'operator':<14} {hub.settings.bootstrap_token}")
    for node, token in issued:
        lines.append(f"  {node.id:<14} {node.country or '--':<3} {node.kind:<14} {token}")
    print("\n".join(lines) + "\n", flush=True)


@contextlib.asynccontextmanager
async def _registry(settings: Settings) -> AsyncIterator[NodeRegistry]:
    """The node registry on the configured Redis, on a running hub's embedded Redis, or on an
    embedded Redis started just for this command."""
    embedded = None
    url = settings.redis_url
    if url is None:
        running = shared_url(settings.data_dir.resolve())
        if running is not None and answers(running):
            url = running
        else:
            embedded = EmbeddedRedis(settings.data_dir, settings.appendfsync)
            url = embedded.start()
    client = Redis.from_url(url)
    try:
        keys = Keys(settings.key_prefix)
        yield NodeRegistry(client, keys, Scripts.register(client))
    finally:
        await client.aclose()
        if embedded is not None:
            embedded.close()


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


if __name__ == "__main__":
    raise SystemExit(main())
