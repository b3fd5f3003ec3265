"""`alerthub-client`: post, read, retract and follow alerts on an alerthub from a shell.

Exit codes (also in `alerthub-client --help`):
  0    done (post: every alert created, corroborated, updated or unchanged);
  1    the hub refused: any 4xx answer (401, 403, 404, 409, 410, 422, 429...), or at least one
       rejected alert in a post;
  2    usage or local input error: bad flags, an unreadable file, input that is not JSON or
       NDJSON alerts, no token; nothing was sent;
  3    the hub is unreachable or unavailable: no answer at all, 503 or another 5xx, also for
       some alerts of a post (a post stopped by one may have stored its earlier alerts;
       posting the same input again is safe: stored alerts answer `unchanged`);
  130  interrupted by Ctrl-C (`tail` and `receive` end with 0 instead: that is how they stop).
Errors are one line on stderr, `alerthub-client: <status> <error>: <message>`, then one
indented line per problem the hub named (pointer (rule): message); never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any
from urllib.parse import urlsplit

from alerthub_client.cli_args import PROG, build_parser
from alerthub_client.cli_text import (
    ACCEPTED,
    InputError,
    Item,
    Progress,
    alert_table,
    event_line,
    parse_alerts,
    parse_misp,
    problem_lines,
    result_lines,
)
from alerthub_client.client import HubClient
from alerthub_client.errors import HistoryTruncated, HubError, HubUnreachable
from alerthub_client.webhooks import WebhookError, WebhookReceiver

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
# Commands that run until stopped: Ctrl-C is their normal end.
ENDLESS = frozenset({"tail", "receive"})


class UsageError(Exception):
    """A local problem (flags, input, environment): exit 2, nothing sent."""


# --- the commands ---------------------------------------------------------------------------


def _hub(args: argparse.Namespace) -> HubClient:
    if not args.token:
        raise UsageError("no token: give --token or set ALERTHUB_TOKEN")
    parts = urlsplit(args.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--url must be an http:// or https:// URL, not {args.url!r}")
    return HubClient(args.url, args.token, timeout_s=args.timeout)


def read_inputs(
    names: Sequence[str], parse: Callable[[str, str], list[Item]] = parse_alerts
) -> list[Item]:
    """Every alert (or MISP event) of every input, read and checked before anything is sent."""
    items: list[Item] = []
    for name in names:
        try:
            if name == "-":
                name, text = "<stdin>", sys.stdin.read()
            else:
                with open(name, encoding="utf-8") as f:
                    text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"cannot read {name}: {getattr(e, 'strerror', None) or e}") from e
        try:
            items.extend(parse(name, text))
        except InputError as e:
            raise UsageError(f"{e}; nothing was sent") from e
    return items


async def run_post(args: argparse.Namespace) -> int:
    misp = args.format == "misp"
    items = read_inputs(args.files, parse_misp if misp else parse_alerts)
    if not items:
        _say("no alerts in the input; nothing to send")
        return EXIT_OK
    show = args.progress
    if show is None:
        show = sys.stderr.isatty() and len(items) > args.batch_size
    progress = Progress(sys.stderr, len(items)) if show else None
    async with _hub(args) as hub:
        try:
            if misp:
                results = await hub.post_misp_events(
                    [item.alert for item in items], batch_size=args.batch_size
                )
            else:
                results = await hub.post_alerts(
                    [item.alert for item in items],
                    batch_size=args.batch_size,
                    on_progress=progress.update if progress else None,
                )
        except HubError as e:
            if progress:
                progress.finish()
            _print_results(items, e.partial_results or [], args.json)
            if len(items) > args.batch_size:
                e.add_note("alerts sent before this may be stored; posting again is safe")
            raise
    if progress:
        progress.finish()
    _print_results(items, results, args.json)
    rejected = [r for r in results if r.get("status") not in ACCEPTED]
    if not rejected:
        return EXIT_OK
    _say(f"{len(rejected)} of {len(items)} alert{'' if len(items) == 1 else 's'} rejected")
    unavailable = any((r.get("error") or {}).get("error") == "unavailable" for r in rejected)
    return EXIT_UNAVAILABLE if unavailable else EXIT_REFUSED


def _print_results(items: list[Item], results: list[dict[str, Any]], as_json: bool) -> None:
    for result in results:
        source = items[result["index"]].source
        if as_json:
            _emit_json({"source": source, **result})
        else:
            for line in result_lines(source, result):
                print(line)
    sys.stdout.flush()


async def run_get(args: argparse.Namespace) -> int:
    async with _hub(args) as hub:
        _emit_json(await hub.get_alert(args.hub_id), pretty=True)
    return EXIT_OK


async def run_list(args: argparse.Namespace) -> int:
    filters = {"kind": args.kind, "target_country": args.target_country, "since": args.since}
    async with _hub(args) as hub:
        if args.all:
            alerts, shown = [], 0
            async for alert in hub.iter_alerts(**filters, limit=args.limit, after=args.after):
                if args.json:
                    _emit_json(alert)
                else:
                    alerts.append(alert)
                shown += 1
                if args.limit and shown >= args.limit:
                    break
            cursor = None
        else:
            page = await hub.list_alerts(**filters, limit=args.limit, after=args.after)
            alerts, cursor = page.items, page.next
            if args.json:
                for alert in alerts:
                    _emit_json(alert)
    if not args.json:
        print(alert_table(alerts) if alerts else "no alerts")
    if cursor:
        _say(f"more alerts: add --after {cursor} (or --all)")
    return EXIT_OK


async def run_retract(args: argparse.Namespace) -> int:
    async with _hub(args) as hub:
        _emit_json(await hub.retract(args.hub_id, args.reason), pretty=True)
    return EXIT_OK


def subscription_filter(args: argparse.Namespace) -> dict[str, Any]:
    """The subscription filter the flags name; flags not given are left out (match all)."""
    lists = {
        "kinds": args.kind,
        "target_countries": args.target_country,
        "source_countries": args.source_country,
        "tags_any": args.tag,
        "languages": args.language,
    }
    out: dict[str, Any] = {}
    for key, values in lists.items():
        split = [v.strip() for value in values for v in value.split(",") if v.strip()]
        if split:
            out[key] = split
    if args.min_severity:
        out["min_severity"] = args.min_severity
    return out


async def run_subscribe(args: argparse.Namespace) -> int:
    async with _hub(args) as hub:
        answer = await hub.subscribe(subscription_filter(args), webhook_url=args.webhook)
    if args.json:
        _emit_json(answer, pretty=True)
        return EXIT_OK
    print(f"id: {answer['id']}")
    print(f"status: {answer.get('status', '')}")
    if answer.get("secret"):
        print(f"secret: {answer['secret']}")
        _say("the secret is shown only this once; for `alerthub-client receive`:")
        _say(f"  export ALERTHUB_WEBHOOK_SECRET={answer['secret']}", prefix=False)
    else:
        _say(f"follow it with: {PROG} tail {answer['id']}")
    return EXIT_OK


async def run_tail(args: argparse.Namespace) -> int:
    async with _hub(args) as hub:
        seen = 0
        events = hub.events(args.subscription, last_event_id=args.after)
        try:
            async with contextlib.aclosing(events):
                async for event in events:
                    _show_event(event.data, args.json)
                    seen += 1
                    if args.count and seen >= args.count:
                        break
        except HistoryTruncated as e:
            e.add_note("the feed no longer holds that point: tail again without --after")
            raise
    return EXIT_OK


async def run_receive(args: argparse.Namespace) -> int:
    if not args.secret:
        raise UsageError("no secret: give --secret or set ALERTHUB_WEBHOOK_SECRET")
    done = asyncio.Event()
    seen = 0

    def on_event(event: dict[str, Any]) -> None:
        nonlocal seen
        _show_event(event, args.json)
        seen += 1
        if args.count and seen >= args.count:
            done.set()

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
    logger = logging.getLogger("alerthub_client.webhooks")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        receiver = WebhookReceiver(args.secret, on_event, path=args.path)
        async with receiver.running(args.host, args.port) as url:
            _say(f"receiving webhooks at {url}")
            await done.wait()
    except (WebhookError, ValueError) as e:
        raise UsageError(str(e)) from e
    except OSError as e:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from e
    return EXIT_OK


# --- output and the entry point -------------------------------------------------------------


def _show_event(event: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _emit_json(event)
    else:
        print(event_line(event), flush=True)


def _emit_json(value: Any, pretty: bool = False) -> None:
    indent = 2 if pretty else None
    print(json.dumps(value, ensure_ascii=False, indent=indent), flush=True)


def _say(message: str, prefix: bool = True) -> None:
    print(f"{PROG}: {message}" if prefix else message, file=sys.stderr, flush=True)


def exit_code(error: HubError) -> int:
    """3 when the hub could not do the work (no answer, 5xx), 1 when it refused it."""
    if isinstance(error, HubUnreachable) or error.status == 0 or error.status >= 500:
        return EXIT_UNAVAILABLE
    return EXIT_REFUSED


Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]
COMMANDS: dict[str, Command] = {
    "post": run_post,
    "get": run_get,
    "list": run_list,
    "retract": run_retract,
    "subscribe": run_subscribe,
    "tail": run_tail,
    "receive": run_receive,
}


def main(argv: Sequence[str] | None = None) -> int:
    with contextlib.suppress(AttributeError, ValueError):
        sys.stdout.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    command = COMMANDS[args.command]
    try:
        return asyncio.run(command(args))
    except KeyboardInterrupt:
        return EXIT_OK if args.command in ENDLESS else EXIT_INTERRUPTED
    except UsageError as e:
        _say(str(e))
        return EXIT_USAGE
    except HubError as e:
        _say(f"{e.error}: {e.message}" if isinstance(e, HubUnreachable) else str(e))
        for line in [*problem_lines({"details": e.details}), *getattr(e, "__notes__", ())]:
            print(line, file=sys.stderr)
        return exit_code(e)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as other tools do. Python's docs:
        # point stdout at devnull so that the flush at exit does not fail again.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
