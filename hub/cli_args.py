"""The command line of `alerthub`: every command, flag and help text (the commands themselves
are in cli.py, cli_serve.py and cli_nodes.py). Only the standard library and the settings'
table: `alerthub --help` answers without loading the service."""

from __future__ import annotations

import argparse
import os
import textwrap
from pathlib import Path
from typing import Any

from hub import __version__
from hub.settings import ROLES, environment_help

PROG = "alerthub"
NODE_KINDS = ("government", "civil-society")
MAX_WORKERS = 64  # more is a typo: each worker holds a full hub and its Redis connections

SERVE_EXIT_HELP = """\
exit codes:
  0  stopped (Ctrl-C or SIGTERM: open requests are drained first)
  1  the embedded Redis cannot start, or another hub owns its data folder
  2  bad settings or flags, or the address cannot be listened on (a port in use)
  3  with --workers: a worker could not start (its log line says why), so none was kept"""

NODES_EXIT_HELP = """\
exit codes:
  0  done
  1  the node exists (add) or is unknown (revoke); the embedded Redis cannot start
  2  bad settings or a profile the node schema refuses (each problem is named)"""

NODES_STORE_HELP = (
    "Works on the Redis of ALERTHUB_REDIS_URL, else on the embedded Redis of a hub running "
    "on ALERTHUB_DATA_DIR, else on that folder's Redis started just for the command. "
    "A running hub sees the change at once."
)


def _described(
    commands: Any, name: str, help_: str, description: str, epilog: str | None = None
) -> argparse.ArgumentParser:
    return commands.add_parser(
        name,
        help=help_,
        description=textwrap.fill(description, 88),
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Regional alert-sharing hub: national nodes post threat and "
        "disinformation alerts, partners receive what each alert's sharing policy lets them "
        "see. `alerthub COMMAND --help` tells more of each command.",
        epilog="The settings come from the environment: `alerthub serve --help` lists them.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument(
        "--env-file",
        type=Path,
        default=Path(".env"),
        metavar="FILE",
        help="a KEY=VALUE file of settings, read under the environment (default: .env)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_serve(commands)
    _add_demo(commands)
    _add_nodes(commands)
    _add_fanout_groups(commands)
    return parser


def _add_serve(commands: Any) -> None:
    serve = _described(
        commands,
        "serve",
        "run the hub",
        "Run the hub: the HTTP API under /v1 (schemas/openapi.yaml describes it), the status "
        "page at /status, metrics at /metrics, fan-out and webhook delivery, in one process. "
        "Without ALERTHUB_REDIS_URL it starts an embedded redis-server with its files in "
        "ALERTHUB_DATA_DIR (append-only file on), so that a fresh machine needs nothing else. "
        "Set ALERTHUB_BOOTSTRAP_TOKEN to have an `operator` node that can add others (or use "
        "`alerthub nodes add`). The README and docs/ of the source tree tell more.",
        epilog=environment_help() + "\n\n" + SERVE_EXIT_HELP,
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to listen on; 0.0.0.0 for every IPv4 interface (default: %(default)s)",
    )
    serve.add_argument(
        "--port",
        type=_port,
        default=8080,
        help="the TCP port, 0 for a free one (default: %(default)s)",
    )
    serve.add_argument(
        "--workers",
        type=_workers,
        default=1,
        metavar="N|auto",
        help="hub processes serving the same port, run by gunicorn's arbiter, which replaces "
        "one that dies; auto: one per CPU (default: %(default)s, the hub in this process)",
    )
    serve.add_argument(
        "--role",
        choices=ROLES,
        help="all: everything; api: the HTTP API, no background delivery; delivery: fan-out, "
        "webhooks and e-mail, serving only /healthz, /readyz and /metrics (default: "
        "ALERTHUB_ROLE, else all)",
    )
    serve.add_argument(
        "--demo",
        action="store_true",
        help="add demo nodes for the six Western Balkan states and two fact-checkers, and print "
        "their tokens (and an operator token when ALERTHUB_BOOTSTRAP_TOKEN is unset)",
    )


def _add_demo(commands: Any) -> None:
    demo = _described(
        commands,
        "demo",
        "run a hub on a fresh embedded Redis and replay the Western Balkans scenario",
        "Start a hub on an embedded Redis of its own (ALERTHUB_REDIS_URL is not used), "
        "register the six Western Balkan CERTs and two fact-checkers, subscribe each, replay "
        "the scenario step by step showing who received what and why the others did not, "
        "then keep the hub running until Ctrl-C. Exit 0 when every expectation held, 1 when "
        "one did not, 2 for bad input (or a port in use), 130 when interrupted mid-scenario.",
    )
    demo.add_argument("--host", default="127.0.0.1", help="default: %(default)s")
    demo.add_argument(
        "--port", type=_port, default=8080, help="0: a free port (printed); default: %(default)s"
    )
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
        "--pause", type=float, default=1.5, help="seconds between steps (default: %(default)s)"
    )
    demo.add_argument(
        "--json", type=Path, dest="json_path", help="write what each partner received here"
    )
    demo.add_argument("--scenario", type=Path, help="a scenario file (default: the packaged one)")


def _add_nodes(commands: Any) -> None:
    nodes = _described(
        commands,
        "nodes",
        "add, list and revoke nodes",
        "Manage the nodes that may call the hub. " + NODES_STORE_HELP,
    ).add_subparsers(dest="nodes_command", required=True, metavar="ACTION")
    add = _described(
        nodes,
        "add",
        "add a node and print its token once",
        "Add a node and print its bearer token. The token is shown only this once: the hub "
        "keeps only its hash. " + NODES_STORE_HELP,
        epilog=NODES_EXIT_HELP,
    )
    add.add_argument(
        "id",
        metavar="ID",
        help="the node id, such as rs-cert: a-z, 0-9 and '-', 2 to 63 characters",
    )
    add.add_argument("--name", required=True, help='a display name, such as "SRB-CERT (Serbia)"')
    add.add_argument(
        "--country",
        required=True,
        metavar="CC",
        help="ISO 3166-1 alpha-2 country code, XK for Kosovo (any case)",
    )
    add.add_argument(
        "--kind",
        required=True,
        choices=NODE_KINDS,
        help="government nodes see AMBER alerts; civil-society ones only when named",
    )
    add.add_argument(
        "--roles",
        default="publish,subscribe",
        help="comma-separated: publish, subscribe, fact-check, operator (default: %(default)s)",
    )
    add.add_argument(
        "--withhold-from",
        default="",
        metavar="PARTIES",
        help="comma-separated node ids or country codes that never get this node's alerts "
        "(default: none)",
    )
    _described(
        nodes,
        "list",
        "list nodes",
        "One line per node: id, country, kind, roles, active or revoked. " + NODES_STORE_HELP,
        epilog=NODES_EXIT_HELP,
    )
    revoke = _described(
        nodes,
        "revoke",
        "revoke a node's token at once",
        "Revoke a node's token: the next request with it gets 401. " + NODES_STORE_HELP,
        epilog=NODES_EXIT_HELP,
    )
    revoke.add_argument("id", metavar="ID", help="the node id")


def _workers(text: str) -> int:
    """A number of processes, 1 or more, or `auto`: the CPUs this process may run on."""
    if text == "auto":
        return (
            len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count() or 1
        )
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number or auto: {text!r}") from None
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"must be 1 to {MAX_WORKERS} or auto, not {value}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be 0 to 65535")
    return value


FANOUT_GROUPS_EXIT_HELP = """\
exit codes:
  0  listed; with --prune, every group of another split removed (or there was none)
  1  with --prune, some kept (each line says why); the embedded Redis cannot start
  2  bad settings"""


def _add_fanout_groups(commands: Any) -> None:
    groups = _described(
        commands,
        "fanout-groups",
        "list the fan-out's consumer groups; remove those of an old shard count",
        "List the fan-out's consumer groups on the event log: this hub's (one per shard of "
        "ALERTHUB_FANOUT_SHARDS) and those left by a hub that ran with another count, which "
        "guide nothing once this hub's groups are all made. With --prune, remove those, "
        "each once no process has read it for --min-idle seconds (a process of the old count "
        "may still run during a rolling restart). " + NODES_STORE_HELP,
        epilog=FANOUT_GROUPS_EXIT_HELP,
    )
    groups.add_argument(
        "--prune", action="store_true", help="remove the groups of other shard counts"
    )
    groups.add_argument(
        "--min-idle",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="keep a group read less than this long ago (default: %(default)g)",
    )
