"""The demo: its nodes (the six Western Balkan governments' CERTs and two civil-society
fact-checkers), added by `alerthub serve --demo`; and `alerthub demo`, which starts a hub on an
embedded Redis of its own, replays the scenario (hub/demo_replay.py) and reports."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import shutil
import signal
import sys
import tempfile
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from aiohttp import web

from hub.app import create_app
from hub.demo.replay import Replay
from hub.demo.scenario import Scenario, ScenarioError, parse_scenario, read_scenario
from hub.demo.view import closing_lines
from hub.ingest.validation import SchemaSet
from hub.logs import hide_literal
from hub.nodes import Node, NodeRegistry
from hub.settings import Settings
from hub.store.embedded import EmbeddedRedis

DEMO_NODES: tuple[dict, ...] = (
    {"id": "al-cert", "name": "AKCESK (Albania)", "country": "AL", "kind": "government"},
    {
        "id": "ba-cert",
        "name": "CERT of Bosnia and Herzegovina",
        "country": "BA",
        "kind": "government",
    },
    {"id": "xk-cert", "name": "KOS-CERT (Kosovo)", "country": "XK", "kind": "government"},
    {"id": "me-cert", "name": "CIRT.ME (Montenegro)", "country": "ME", "kind": "government"},
    {"id": "mk-cert", "name": "MKD-CIRT (North Macedonia)", "country": "MK", "kind": "government"},
    {"id": "rs-cert", "name": "SRB-CERT (Serbia)", "country": "RS", "kind": "government"},
    {
        "id": "factcheck-ba",
        "name": "Fact-checkers of Bosnia and Herzegovina",
        "country": "BA",
        "kind": "civil-society",
    },
    {
        "id": "factcheck-rs",
        "name": "Fact-checkers of Serbia",
        "country": "RS",
        "kind": "civil-society",
    },
)


def node_body(profile: dict) -> dict:
    """The POST /v1/nodes body of a demo node: governments publish and subscribe, civil-society
    partners subscribe and publish fact-checks."""
    government = profile["kind"] == "government"
    roles = ["publish", "subscribe"] if government else ["subscribe", "fact-check"]
    return {**profile, "roles": roles}


async def register_demo_nodes(registry: NodeRegistry) -> list[tuple[Node, str]]:
    """Each demo node, created if missing, with a fresh token (tokens are kept only as hashes,
    so a restarted demo can show them only by issuing new ones)."""
    issued = []
    for profile in DEMO_NODES:
        node = await registry.ensure(node_body(profile), registered_by="demo")
        token = await registry.replace_token(node.id)
        if token is not None:
            issued.append((node, token))
    return issued


@dataclass(frozen=True, slots=True)
class DemoOptions:
    host: str = "127.0.0.1"
    port: int = 8080  # 0: a free port
    data_dir: Path | None = None  # None: a fresh temporary folder, removed at the end
    wait: bool = True  # keep the hub running after the scenario, until Ctrl-C
    pause_s: float = 1.5  # between steps
    json_path: Path | None = None
    scenario_path: Path | None = None


class DemoError(Exception):
    """The demo cannot start; the message says why."""


def run_demo(settings: Settings, options: DemoOptions, out: TextIO = sys.stdout) -> int:
    """Start the hub on an embedded Redis of its own, replay the scenario, report. 0 when every
    expectation held, 1 when one did not (or the hub refused a step), 130 when interrupted
    before the scenario ended. DemoError or ScenarioError when it cannot start."""
    scenario = load_scenario(options.scenario_path)
    data_dir, temporary = _data_dir(options.data_dir)
    embedded = EmbeddedRedis(data_dir, settings.appendfsync)
    try:
        url = embedded.start()
        token = settings.bootstrap_token or "ah_op_" + secrets.token_urlsafe(24)
        hide_literal(token)
        settings = dataclasses.replace(
            settings,
            redis_url=url,
            data_dir=data_dir,
            bootstrap_token=token,
            allow_private_webhooks=True,  # the fact-checker's receiver listens on loopback
        )
        print(f"alerthub demo: embedded Redis at {url} (data in {data_dir})", file=out, flush=True)
        return asyncio.run(_main(settings, options, scenario, out))
    finally:
        embedded.close()
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)


def load_scenario(path: Path | None = None) -> Scenario:
    """The scenario (the packaged one by default), its alerts checked against the schema."""
    scenario = parse_scenario(read_scenario(path), (p["id"] for p in DEMO_NODES))
    schemas = SchemaSet()
    problems = [
        f"step {step.number} ({step.alert_id}) {p.pointer or '/'}: {p.message}"
        for step in scenario.steps
        if step.post is not None
        for p in schemas.problems("alert", step.post)
    ] + [
        f"step {step.number} (fact-check) {p.pointer or '/'}: {p.message}"
        for step in scenario.steps
        if step.fact_check is not None
        for p in schemas.problems("fact-check", step.fact_check["body"])
    ]
    if problems:
        raise ScenarioError("; ".join(problems))
    return scenario


def _data_dir(chosen: Path | None) -> tuple[Path, bool]:
    """The folder for this run's Redis, and whether it is a temporary one to remove."""
    if chosen is None:
        return Path(tempfile.mkdtemp(prefix="alerthub-demo-")), True
    if chosen.exists() and (not chosen.is_dir() or any(chosen.iterdir())):
        raise DemoError(
            f"{chosen} is not an empty folder: the demo starts from nothing, so that no earlier "
            "run's alerts meet this one (leave out --data-dir for a temporary folder)"
        )
    return chosen, False


async def _main(settings: Settings, options: DemoOptions, scenario: Scenario, out: TextIO) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(create_app(settings), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    replay: Replay | None = None
    try:
        try:
            await web.TCPSite(runner, options.host, options.port).start()
        except OSError as e:
            raise DemoError(f"cannot listen on {options.host}:{options.port}: {e}") from e
        host, port = runner.addresses[0][:2]
        base = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
        print(f"alerthub demo: hub at {base}", file=out, flush=True)
        assert settings.bootstrap_token is not None
        replay = Replay(
            base,
            settings.bootstrap_token,
            scenario,
            tuple(node_body(p) for p in DEMO_NODES),
            pause_s=options.pause_s if options.wait else 0.0,
            json_path=options.json_path,
            out=out,
        )
        code = await _until_stopped(replay.run(), stop)
        if code is None:
            print("\nalerthub demo: interrupted; stopping the hub", file=out, flush=True)
            return 130
        if options.wait:
            subscriptions = {p.node: p.subscription_id for p in replay.partners}
            lines = closing_lines(
                base, settings.bootstrap_token, replay.tokens, subscriptions, waiting=True
            )
            print("", *lines, sep="\n", file=out, flush=True)
            await stop.wait()
            print("\nalerthub demo: stopping the hub", file=out, flush=True)
        return code
    finally:
        if replay is not None:
            await replay.close()
        await runner.cleanup()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _until_stopped(work: Coroutine[Any, Any, int], stop: asyncio.Event) -> int | None:
    """The result of `work`, or None when `stop` is set first (then `work` is cancelled)."""
    task = asyncio.create_task(work)
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None
