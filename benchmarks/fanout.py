"""End-to-end fan-out latency: from the `201` of `POST /v1/alerts` to a webhook receiver and to
an SSE client, receivers in processes of their own.

    .venv/bin/python -m benchmarks.fanout [--scenario webhook|sse|both] [--runs 3] [--quick]
        [--out PATH]

Scenarios (defaults; see --help to change them):
- webhook: 200 alerts/s for 20 s to 50 webhook subscriptions (10 per subscriber node), all on
  one receiver process (benchmarks/kit/receivers.py: an aiohttp server, /hook/0 .. /hook/49,
  that echoes the verification challenge and records each delivery's arrival time).
- sse: 20 alerts/s for 30 s to 1,000 pull subscriptions (100 per subscriber node), each read by
  one `GET /v1/subscriptions/{id}/events` stream; 500 streams per receiver process, two processes.

Each run of a scenario starts, in a temporary folder, a real redis-server (store/embedded.py: the
append-only file on, fsync every second, over a Unix socket, as `alerthub serve` runs it) and one
hub process (`python -m hub serve`, log level warning), registers a publishing node and the
subscribers, waits until every webhook subscription is `active` or every SSE stream is open, then
posts unique GREEN threat alerts (kit/load.py's bodies: unique id and indicators, so each is a new
incident and reaches every subscription as `alert.created`) at a fixed open-loop rate from this
process. The first --warmup seconds' alerts are delivered and checked but left out of the
latencies. After the last answer it waits until every subscription has every alert, or nothing
arrived for --drain-idle seconds, or --drain-timeout passed.

Latency = the receiver's time.time() when the event was read - this process's time.time() when
the 201's status line arrived (one machine, one clock): it can be slightly negative, when the
delivery overtakes the answer. Every subscription must get every accepted alert exactly once:
`missing_at_end` counts (subscription, alert) pairs not received when the drain ended,
`queued_at_end` those of them still waiting in the hub (read from its Redis), `lost` the rest
(nowhere: never to arrive), `duplicates` repeats. CPU is the
user+system time (/proc) of the hub process and of redis-server from the first post until the
drain ended, per delivered event (so it includes the ingest of the alerts, spread over their
deliveries). `fanout_lag_*` samples, 4 times a second, the age of the oldest event-log entry the
fan-out has not read yet: near 0 while the fan-out keeps up, so that the latency is delivery's.
Nothing is pinned: on two cores the hub, Redis, the receivers and the publisher share them, as
they would on a small production machine.

Writes benchmarks/results/fanout-<UTC time>.json, or --out (every run, medians over runs, goals)
and prints a table; fanout_figures.py computes a run's figures, fanout_report.py the medians.
--profile also records the hub with py-spy in each run: the busiest hub functions go into the
JSON, the raw stacks into --profile-dir if given (else they go with the temporary folder).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

if not __package__:  # run as a file (python benchmarks/fanout.py): the repository on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.fanout_figures import (
    FanoutLag,
    backlog,
    calls_per_event,
    command_calls,
    cpu_figures,
    drain,
    log_summary,
    match,
    missing,
    publish_figures,
    receiver_figures,
    trend,
)
from benchmarks.fanout_report import Scenario, build_report, run_line, summary_text
from benchmarks.kit.load import HubApi, bounded, publish
from benchmarks.kit.measurement import CpuMeter, spread
from benchmarks.kit.processes import Stack, hub_env, run_async, stop_on_sigterm
from benchmarks.kit.profile import HubProfiler, summarise
from benchmarks.kit.receiver_control import (
    Receivers,
    start_sse_receivers,
    start_webhook_receivers,
)
from benchmarks.kit.receivers import raise_fd_limit
from benchmarks.kit.report import add_standard_args, hub_code, machine, utc_stamp, write_json

BOOTSTRAP_TOKEN = "bench-operator-fanout"
PUBLISHER = "bench-publisher"
SUBS_PER_NODE = {"webhook": 10, "sse": 100}


def fanout_env(redis_url: str, log_level: str) -> dict[str, str]:
    return hub_env(
        redis_url,
        BOOTSTRAP_TOKEN,
        log_level,
        ALERTHUB_ALLOW_PRIVATE_WEBHOOKS="true",  # the receivers are on loopback
        # Each subscriber node reads SUBS_PER_NODE["sse"] streams at once; the per-node limit
        # (20 by default) would refuse the rest with 429.
        ALERTHUB_MAX_SSE_PER_NODE=str(max(SUBS_PER_NODE.values())),
    )


@dataclasses.dataclass
class Subscribers:
    """The subscriptions of a run, in index order, with the token of each one's node."""

    sub_ids: list[str]
    tokens: list[str]
    publisher_token: str


async def register(
    base_url: str, scenario: Scenario, delivery_of: Callable[[int], dict[str, str]]
) -> Subscribers:
    """The publishing node, subscriber nodes, and `scenario.subs` subscriptions on them."""
    async with aiohttp.ClientSession() as session:
        api = HubApi(session, base_url, BOOTSTRAP_TOKEN)
        publisher = await api.add_node(PUBLISHER, ["publish"], "AL")
        per_node = SUBS_PER_NODE[scenario.name]
        node_count = math.ceil(scenario.subs / per_node)
        node_tokens = await bounded(
            [
                lambda n=n: api.add_node(f"bench-sub-{n}", ["subscribe"], "ME")
                for n in range(node_count)
            ]
        )
        tokens = [node_tokens[i // per_node] for i in range(scenario.subs)]
        sub_ids = await bounded(
            [
                lambda i=i: api.add_subscription(tokens[i], delivery_of(i))
                for i in range(scenario.subs)
            ]
        )
    return Subscribers(sub_ids, tokens, publisher)


async def wait_active(base_url: str, sub_ids: list[str], within_s: float = 60.0) -> None:
    """Until every webhook subscription has answered its challenge."""
    deadline = time.monotonic() + within_s
    waiting = list(sub_ids)
    async with aiohttp.ClientSession() as session:
        api = HubApi(session, base_url, BOOTSTRAP_TOKEN)
        while waiting:
            states = await bounded([lambda s=s: api.status_of(s) for s in waiting])
            waiting = [s for s, state in zip(waiting, states, strict=True) if state != "active"]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(waiting)} webhook subscriptions not active: {states}")
            await asyncio.sleep(0.2)


def start_receivers(
    folder: Path, scenario: Scenario, stack: Stack
) -> tuple[Receivers, Subscribers]:
    """Receivers up, subscriptions made, and every one ready to receive."""
    base_url = stack.hub.base_url
    if scenario.name == "webhook":
        receivers, urls = start_webhook_receivers(folder, scenario.subs, scenario.procs)
        try:
            delivery = lambda i: {"type": "webhook", "url": urls[i]}  # noqa: E731
            subs = run_async(register(base_url, scenario, delivery))
            run_async(wait_active(base_url, subs.sub_ids))
        except BaseException:
            receivers.stop()
            raise
        return receivers, subs
    subs = run_async(register(base_url, scenario, lambda i: {"type": "pull"}))
    receivers = start_sse_receivers(folder, scenario.procs, base_url, subs.sub_ids, subs.tokens)
    return receivers, subs


def run_scenario(
    scenario: Scenario, index: int, folder: Path, args: argparse.Namespace, label: str
) -> dict[str, Any]:
    code = hub_code()
    stack = Stack.start(folder, lambda url: fanout_env(url, args.log_level))
    try:
        receivers, subs = start_receivers(folder, scenario, stack)
        try:
            return {**measure(scenario, index, stack, receivers, subs, args, label), **code}
        finally:
            receivers.stop()
    finally:
        stack.stop()


def measure(
    scenario: Scenario,
    index: int,
    stack: Stack,
    receivers: Receivers,
    subs: Subscribers,
    args: argparse.Namespace,
    label: str,
) -> dict[str, Any]:
    pids = {**stack.pids, "publisher": os.getpid()}
    pids.update({f"receiver{n}": p.process.pid for n, p in enumerate(receivers.procs)})
    meter = CpuMeter(pids)
    profile_dir = args.profile_dir or stack.folder
    profiler = HubProfiler(stack.hub.process.pid, profile_dir / f"{label}-hub-py-spy.txt")
    profiling = args.profile and profiler.start()
    calls_before = run_async(command_calls(stack.store.url))
    lag = FanoutLag(stack.store.url)
    lag.start()
    meter.start()
    published = run_async(
        publish(
            stack.hub.base_url,
            subs.publisher_token,
            scenario.rate,
            scenario.warmup,
            scenario.duration,
        )
    )
    accepted = [p for p in published if p.hub_id is not None]
    expected = len(accepted) * scenario.subs
    last_answer = max((p.answered for p in published), default=time.time())
    drained = drain(receivers, expected, last_answer, args)
    cpu, seconds = meter.stop()
    fanout_lag = lag.stop()
    calls_after = run_async(command_calls(stack.store.url))
    if profiling:
        profiler.stop()
    where_left = run_async(backlog(stack.store.url, subs.sub_ids, scenario.name == "webhook"))
    dumps = receivers.dump(stack.folder)
    matched = match(published, dumps, receivers.where)
    result: dict[str, Any] = {
        "scenario": scenario.name,
        "run": index,
        "subscriptions": scenario.subs,
        "rate_per_s": scenario.rate,
        "expected": expected,
        "received": matched.distinct,
        **missing(expected, matched.distinct, where_left, scenario.subs),
        "duplicates": matched.duplicates,
        "unexpected": matched.unexpected,
        "measured_deliveries": len(matched.latencies.from_201),
        **spread(matched.latencies.from_201),
        "from_due": spread(matched.latencies.from_due),
        **trend(matched.latencies),
        **publish_figures(published),
        **fanout_lag,
        "complete_after_last_answer_s": drained.complete_after_s,
        "drain_waited_s": round(drained.waited_s, 1),
        "backlog_at_end": where_left,
        **cpu_figures(cpu, seconds, matched.delivered),
        **calls_per_event(calls_before, calls_after, matched.delivered),
        **receiver_figures(dumps),
        "hub_log": log_summary(stack.hub.log_path),
    }
    if profiling:
        result["profile"] = summarise(profiler.out, seconds)
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--scenario", choices=("webhook", "sse", "both"), default="both")
    add("--runs", type=int, default=3, help="runs per scenario; medians are over runs")
    add_standard_args(
        parser, "1 run, 3 s, 10 webhooks at <= 50 alerts/s, 100 SSE; exit status judges losses only"
    )
    add("--webhook-subs", type=int, default=50)
    add("--webhook-rate", type=float, default=200.0, help="alerts/s in the webhook scenario")
    add("--webhook-duration", type=float, default=20.0, help="measured seconds of publishing")
    add("--webhook-procs", type=int, default=1, help="webhook receiver processes")
    add("--sse-clients", type=int, default=1000)
    add("--sse-rate", type=float, default=20.0, help="alerts/s in the SSE scenario")
    add("--sse-duration", type=float, default=30.0, help="measured seconds of publishing")
    add("--sse-procs", type=int, default=2, help="SSE client processes")
    add("--warmup", type=float, default=2.0, help="seconds of publishing before the measured")
    add("--drain-idle", type=float, default=15.0, help="stop waiting after this long idle")
    add("--drain-timeout", type=float, default=420.0, help="longest wait after the last post")
    add("--log-level", default="warning", choices=("debug", "info", "warning", "error"))
    add("--profile", action="store_true", help="py-spy the hub in each run (summary in the JSON)")
    add("--profile-dir", type=Path, default=None, help="keep py-spy's raw stacks here")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.warmup = 1, 1.0
        args.webhook_subs, args.webhook_duration = min(args.webhook_subs, 10), 3.0
        args.webhook_rate = min(args.webhook_rate, 50.0)  # a backlog would only add waiting
        args.sse_clients, args.sse_duration = min(args.sse_clients, 100), 3.0
    if args.runs < 1 or args.webhook_subs < 1 or args.sse_clients < 1:
        parser.error("--runs, --webhook-subs and --sse-clients must be >= 1")
    return args


def scenarios_of(args: argparse.Namespace) -> list[Scenario]:
    webhook = Scenario(
        "webhook",
        args.webhook_subs,
        args.webhook_rate,
        args.webhook_duration,
        args.warmup,
        args.webhook_procs,
    )
    sse = Scenario(
        "sse", args.sse_clients, args.sse_rate, args.sse_duration, args.warmup, args.sse_procs
    )
    return {"webhook": [webhook], "sse": [sse], "both": [webhook, sse]}[args.scenario]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_sigterm()
    fd_limit = raise_fd_limit()
    started_at = dt.datetime.now(dt.UTC)
    stamp = utc_stamp(started_at)
    scenarios = scenarios_of(args)
    runs: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="alerthub-fanout-") as tmp:
            for index in range(1, args.runs + 1):
                for scenario in scenarios:
                    label = f"fanout-{stamp}-{scenario.name}{index}"
                    folder = Path(tmp) / f"{scenario.name}-{index}"
                    result = run_scenario(scenario, index, folder, args, label)
                    runs.append(result)
                    print(run_line(result), flush=True)
    except KeyboardInterrupt:
        print("interrupted; processes stopped, temporary folder removed", file=sys.stderr)
        return 130
    report = build_report(
        args,
        scenarios,
        runs,
        started_at=started_at.isoformat(timespec="seconds"),
        machine=machine(),
        open_files_soft_limit=fd_limit,
    )
    out = write_json(report, args.out, "fanout", stamp)
    print(summary_text(report))
    print(f"wrote {out}")
    if args.quick:  # a smoke run judges what was lost, not the speed
        return 0 if all(g["exactly_once_met"] for g in report["goals"].values()) else 1
    return 0 if all(g["all_met"] for g in report["goals"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
