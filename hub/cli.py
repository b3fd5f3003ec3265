"""`alerthub serve`, `alerthub demo` and `alerthub nodes add|list|revoke`.

The parser (cli_args.py) needs only the standard library; each command's code, with aiohttp,
redis and the service behind it, is imported once the arguments say which command runs, so
that `--help` and a mistyped flag answer at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from hub.cli_args import build_parser
from hub.settings import Settings, SettingsError

if TYPE_CHECKING:
    import asyncio


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env(env_file=args.env_file)
    except SettingsError as e:
        print(f"alerthub: {e}", file=sys.stderr)
        return 2
    from hub.logs import configure_logging
    from hub.store.connect import RedisSetupError
    from hub.store.embedded import EmbeddedRedisError

    if args.command == "demo":
        # The replay is the output: the hub's own log shows warnings and worse unless asked.
        level = "warning" if settings.log_level == "info" else settings.log_level
        configure_logging(level, secrets=[settings.bootstrap_token])
        return demo_command(settings, args)
    configure_logging(settings.log_level, secrets=[settings.bootstrap_token])
    try:
        if args.command == "serve":
            return _serve(settings, args)
        if args.command == "fanout-groups":
            return _fanout_groups(settings, args)
        return _nodes(settings, args)
    except EmbeddedRedisError as e:
        print(f"alerthub: {e}", file=sys.stderr)
        return 1
    except RedisSetupError as e:  # a bad ALERTHUB_REDIS_URL, a Redis older than 6.2
        print(f"alerthub: {e}", file=sys.stderr)
        return 2


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from hub.cli_serve import ListenError, serve

    if args.role is not None:  # the flag wins over ALERTHUB_ROLE
        settings = dataclasses.replace(settings, role=args.role)
    try:
        return serve(settings, args.host, args.port, args.demo, args.workers)
    except ListenError as e:  # one line and 2, as `alerthub demo` answers the same fault
        print(f"alerthub: {e}", file=sys.stderr)
        return 2


def _nodes(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from hub.cli_nodes import nodes_command

    return asyncio.run(nodes_command(settings, args))


def _fanout_groups(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from hub.cli_fanout import fanout_groups_command

    return asyncio.run(fanout_groups_command(settings, args))


def demo_command(settings: Settings, args: argparse.Namespace) -> int:
    from hub.demo.command import DemoError, DemoOptions, run_demo
    from hub.demo.scenario import ScenarioError
    from hub.store.embedded import EmbeddedRedisError

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


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (its socket transports cost a fraction of asyncio's on the
    hot path), else the standard loop. (Here, not in cli_serve.py: the benchmarks import it.)"""
    import asyncio

    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


if __name__ == "__main__":
    raise SystemExit(main())
