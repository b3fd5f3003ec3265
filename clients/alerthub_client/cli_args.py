"""The command line of `alerthub-client`: every command, flag and help text (the commands
themselves are in cli.py)."""

from __future__ import annotations

import argparse
import os
import textwrap
from collections.abc import Callable
from importlib import metadata
from typing import Any

PROG = "alerthub-client"
DEFAULT_URL = "http://127.0.0.1:8080"
DISTRIBUTION = "alerthub"  # the client installs with the hub, from the same package

ENV_HELP = """\
environment:
  ALERTHUB_URL             the hub (default http://127.0.0.1:8080); --url wins
  ALERTHUB_TOKEN           your node's bearer token; --token wins
  ALERTHUB_WEBHOOK_SECRET  the secret `receive` verifies with; --secret wins"""

EXIT_HELP = """\
exit codes:
  0    done (post: every alert created, corroborated, updated or unchanged)
  1    the hub refused: a 4xx answer, or at least one rejected alert in a post
  2    usage or local input error (bad flags, unreadable or non-JSON input, no token);
       nothing was sent
  3    the hub is unreachable or unavailable (no answer, 503, other 5xx; also a post
       in which the hub answered 503 for some alerts); posting again is safe
  130  interrupted (tail and receive end with 0 on Ctrl-C)"""

EXAMPLES_HELP = """\
examples:
  export ALERTHUB_URL=https://hub.example ALERTHUB_TOKEN=ah_...
  alerthub-client post alerts.ndjson
  alerthub-client list --kind disinformation --target-country RS
  alerthub-client subscribe --pull --kind threat --min-severity high
  alerthub-client tail SUBSCRIPTION_ID --json | jq .alert.title"""


def _connection_options(suppress: bool) -> argparse.ArgumentParser:
    """--url, --token and --timeout, taken before or after the command name. After it they
    default to SUPPRESS, so they override the ones before it only when given."""
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("hub connection")

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    group.add_argument(
        "--url",
        default=default(os.environ.get("ALERTHUB_URL") or DEFAULT_URL),
        help=f"the hub's base URL (env ALERTHUB_URL, default {DEFAULT_URL})",
    )
    group.add_argument(
        "--token",
        default=default(os.environ.get("ALERTHUB_TOKEN") or None),
        help="your node's bearer token (env ALERTHUB_TOKEN)",
    )
    group.add_argument(
        "--timeout",
        type=_positive_float,
        default=default(30.0),
        metavar="SECONDS",
        help="give up on one request after this long (default 30)",
    )
    return options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Post, read, retract and follow alerts on an alerthub.",
        epilog="\n\n".join((ENV_HELP, EXIT_HELP, EXAMPLES_HELP)),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_connection_options(suppress=False)],
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_post(commands)
    _add_reads(commands)
    _add_subscribe(commands)
    _add_tail(commands)
    _add_receive(commands)
    return parser


def version() -> str:
    """The installed alerthub package's version ("unknown" when run from sources that were
    never installed)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


def _command(
    commands: Any, name: str, help_: str, description: str, *, to_hub: bool = True
) -> argparse.ArgumentParser:
    return commands.add_parser(
        name,
        help=help_,
        description=textwrap.fill(description, 88),
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_connection_options(suppress=True)] if to_hub else [],
    )


def _add_post(commands: Any) -> None:
    post = _command(
        commands,
        "post",
        "post alerts from JSON or NDJSON files",
        'Post the alerts of each FILE: a JSON alert, a JSON list of alerts, {"alerts": [...]}, '
        "or NDJSON (one alert per line; .ndjson and .jsonl files always are). `-` reads stdin. "
        "Every input is read and checked first: if any is unreadable or not JSON, nothing is "
        "sent (exit 2). Alerts go in batches; one line per alert says what the hub did. "
        "Posting the same input again is safe: stored alerts answer `unchanged`.",
    )
    post.add_argument("files", nargs="+", metavar="FILE", help="a file of alerts, or - for stdin")
    post.add_argument(
        "--format",
        choices=("alerts", "misp"),
        default="alerts",
        help='alerts (default), or misp: each FILE holds MISP events ({"Event": ...}, a list '
        'of them or MISP\'s {"response": [...]}), posted to /v1/imports/misp',
    )
    post.add_argument("--json", action="store_true", help="print the results as NDJSON")
    post.add_argument(
        "--batch-size",
        type=_int_range(1, 500),
        default=500,
        metavar="N",
        help="alerts per request, 1 to 500 (default %(default)s)",
    )
    post.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress bar on stderr (default: when stderr is a terminal and the input "
        "takes more than one batch)",
    )


def _add_reads(commands: Any) -> None:
    get = _command(commands, "get", "show one alert", "Print an alert as JSON.")
    get.add_argument("hub_id", metavar="HUB_ID")
    list_ = _command(
        commands,
        "list",
        "list alerts you may see, newest first",
        "List the alerts your node may see, newest first, as a table (or NDJSON with --json). "
        "One page unless --all; when more remain, the --after cursor is shown on stderr.",
    )
    list_.add_argument("--kind", choices=("threat", "disinformation"))
    list_.add_argument("--target-country", metavar="CC", help="a two-letter country code")
    list_.add_argument("--since", metavar="TIME", help="RFC 3339, e.g. 2026-11-20T00:00:00Z")
    list_.add_argument(
        "--limit", type=_int_range(1, 500), metavar="N", help="at most N alerts (1 to 500)"
    )
    list_.add_argument("--after", metavar="CURSOR", help="the `next` cursor of an earlier page")
    list_.add_argument("--all", action="store_true", help="follow pages to the end")
    list_.add_argument("--json", action="store_true", help="one JSON alert per line")
    retract = _command(
        commands,
        "retract",
        "retract an alert you sent",
        "Retract one of your alerts: everyone who received it gets alert.retracted.",
    )
    retract.add_argument("hub_id", metavar="HUB_ID")
    retract.add_argument("--reason", required=True, help="why, for the recipients")


def _add_subscribe(commands: Any) -> None:
    sub = _command(
        commands,
        "subscribe",
        "create a subscription (webhook or pull)",
        "Create a subscription. Filter flags repeat (or take comma-separated values); a "
        "missing one matches everything. Prints the id and, for a webhook, the signing "
        "secret: it is shown only this once.",
    )
    how = sub.add_mutually_exclusive_group(required=True)
    how.add_argument("--webhook", metavar="URL", help="push events to this URL (signed)")
    how.add_argument("--pull", action="store_true", help="read the feed with tail or pull")
    for flag, help_ in (
        ("--kind", "threat or disinformation"),
        ("--target-country", "a targeted country (two letters)"),
        ("--source-country", "a sender's country (two letters)"),
        ("--tag", "a tag (any one matches)"),
        ("--language", "a BCP 47 language tag, e.g. sr-Cyrl"),
    ):
        sub.add_argument(flag, action="append", default=[], metavar="VALUE", help=help_)
    sub.add_argument("--min-severity", choices=("low", "medium", "high", "critical"))
    sub.add_argument("--json", action="store_true", help="print the hub's answer as JSON")


def _add_tail(commands: Any) -> None:
    tail = _command(
        commands,
        "tail",
        "follow a pull subscription live (SSE)",
        "Print a subscription's events as they arrive, one line each (time, type, severity, "
        "TLP, sender, title, hub id) or NDJSON with --json. Resumes by itself after a cut "
        "connection; Ctrl-C stops it (exit 0).",
    )
    tail.add_argument("subscription", metavar="SUBSCRIPTION")
    tail.add_argument("--after", metavar="EVENT_ID", help="start after this event id")
    tail.add_argument("--count", type=_int_range(1, None), metavar="N", help="stop after N events")
    tail.add_argument("--json", action="store_true", help="print each full event as JSON")


def _add_receive(commands: Any) -> None:
    receive = _command(
        commands,
        "receive",
        "run a verifying webhook receiver",
        "Listen for the hub's webhook deliveries, check each signature and timestamp, answer "
        "the verification challenge, drop repeats, and print each event like tail. Refused "
        "deliveries are logged on stderr. Ctrl-C stops it (exit 0).",
        to_hub=False,
    )
    receive.add_argument("--port", type=_int_range(1, 65535), required=True)
    receive.add_argument("--host", default="127.0.0.1", help="default %(default)s")
    receive.add_argument("--path", default="/", help="the URL path to serve (default /)")
    receive.add_argument(
        "--secret",
        default=os.environ.get("ALERTHUB_WEBHOOK_SECRET") or None,
        help="the subscription's whsec_ secret (env ALERTHUB_WEBHOOK_SECRET)",
    )
    receive.add_argument("--count", type=_int_range(1, None), metavar="N", help="stop after N")
    receive.add_argument("--json", action="store_true", help="print each full event as JSON")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _int_range(low: int, high: int | None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(
                f"must be {low} or more" if high is None else f"must be {low} to {high}"
            )
        return value

    return parse
