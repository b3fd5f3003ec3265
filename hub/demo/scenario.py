"""The demo's scenario: who subscribes how, and the steps, each a post or a retraction with the
partners expected to receive it. Loading and checking are pure apart from reading the file; the
scenario ships with the client package (alerthub_client/scenario/*.json)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

DEFAULT_SCENARIO = "western-balkans.json"
DELIVERIES = ("sse", "pull", "webhook")
EVENT_TYPES = (
    "alert.created",
    "alert.corroborated",
    "alert.updated",
    "alert.retracted",
    "alert.fact_checked",
    "alert.fact_check_retracted",
)


class ScenarioError(ValueError):
    """The scenario file cannot be used; the message lists every problem."""


@dataclass(frozen=True, slots=True)
class Plan:
    """How one partner reads: over SSE, by pull, or by webhook, with its subscription filter."""

    delivery: str
    filter: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Step:
    number: int
    sender: str
    note: str
    post: dict[str, Any] | None  # the alert to post, or None for a retraction
    retract: str | None  # the sender's id of an alert posted in an earlier step
    reason: str
    expect: dict[str, str]  # node id -> the one event type it must receive; others get none
    # A fact-check: {"on": the id of an alert posted earlier, "body": the fact-check}.
    fact_check: dict[str, Any] | None = None

    @property
    def alert_id(self) -> str:
        """The sender's id of the alert this step posts, retracts or fact-checks."""
        if self.post is not None:
            return str(self.post["id"])
        if self.fact_check is not None:
            return str(self.fact_check["on"])
        assert self.retract is not None
        return self.retract

    @property
    def action(self) -> str:
        if self.post is not None:
            return "post"
        return "fact-check" if self.fact_check is not None else "retract"


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    plans: dict[str, Plan]
    steps: tuple[Step, ...]

    def posted(self) -> dict[str, dict[str, Any]]:
        """Every alert the scenario posts, by its id."""
        return {step.alert_id: step.post for step in self.steps if step.post is not None}


def read_scenario(path: Path | None = None) -> Any:
    """The scenario file's JSON: `path`, or the one shipped with alerthub_client."""
    try:
        if path is None:
            text = resources.files("alerthub_client").joinpath("scenario", DEFAULT_SCENARIO)
            return json.loads(text.read_text(encoding="utf-8"))
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ScenarioError(f"cannot read the scenario {path or DEFAULT_SCENARIO}: {e}") from e
    except ValueError as e:
        raise ScenarioError(f"the scenario {path or DEFAULT_SCENARIO} is not JSON: {e}") from e


def parse_scenario(data: Any, nodes: Iterable[str]) -> Scenario:
    """The scenario in `data`, checked against the demo's node ids; ScenarioError lists every
    problem found (the alerts themselves are checked against the schema elsewhere)."""
    known = set(nodes)
    problems: list[str] = []
    if not isinstance(data, dict):
        raise ScenarioError("the scenario must be a JSON object")
    plans = _plans(data.get("subscriptions"), known, problems)
    steps: list[Step] = []
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        problems.append("steps: must be a non-empty list")
        raw_steps = []
    posted: dict[str, str] = {}  # alert id -> sender
    for number, raw in enumerate(raw_steps, start=1):
        step = _step(number, raw, known, posted, problems)
        if step is not None:
            steps.append(step)
    if problems:
        raise ScenarioError("; ".join(problems))
    return Scenario(
        name=str(data.get("name", "scenario")),
        description=str(data.get("description", "")),
        plans=plans,
        steps=tuple(steps),
    )


def _plans(raw: Any, known: set[str], problems: list[str]) -> dict[str, Plan]:
    if not isinstance(raw, dict):
        problems.append("subscriptions: must map node ids to {delivery, filter}")
        return {}
    plans = {}
    for node, plan in raw.items():
        where = f"subscriptions.{node}"
        if node not in known:
            problems.append(f"{where}: no demo node {node}")
        elif not isinstance(plan, dict) or plan.get("delivery") not in DELIVERIES:
            problems.append(f"{where}: delivery must be one of {', '.join(DELIVERIES)}")
        elif not isinstance(plan.get("filter", {}), dict):
            problems.append(f"{where}: filter must be an object")
        else:
            plans[node] = Plan(plan["delivery"], dict(plan.get("filter", {})))
    return plans


def _step(
    number: int, raw: Any, known: set[str], posted: dict[str, str], problems: list[str]
) -> Step | None:
    where = f"step {number}"
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be an object")
        return None
    sender = raw.get("sender")
    if sender not in known:
        problems.append(f"{where}: sender must be a demo node, not {sender!r}")
    post, retract, fact_check = raw.get("post"), raw.get("retract"), raw.get("fact_check")
    if sum(x is not None for x in (post, retract, fact_check)) != 1:
        problems.append(
            f"{where}: give one of post (an alert), retract (an alert id) or fact_check "
            "({on: an alert id, body: a fact-check})"
        )
    elif fact_check is not None:
        if (
            not isinstance(fact_check, dict)
            or fact_check.get("on") not in posted
            or not isinstance(fact_check.get("body"), dict)
        ):
            problems.append(f"{where}: fact_check needs on (an alert posted earlier) and body")
            fact_check = None
    elif post is not None:
        if not isinstance(post, dict) or not isinstance(post.get("id"), str):
            problems.append(f"{where}: post must be an alert with an id")
        elif post["id"] in posted:
            problems.append(f"{where}: alert {post['id']} is posted twice")
        else:
            posted[post["id"]] = str(sender)
    elif posted.get(retract) != sender:
        problems.append(f"{where}: {sender} can retract only an alert it posted earlier")
    expect = raw.get("expect")
    if not isinstance(expect, dict):
        problems.append(f"{where}: expect must map node ids to event types")
        expect = {}
    for node, event_type in expect.items():
        if node not in known:
            problems.append(f"{where}: expect names no demo node {node}")
        if event_type not in EVENT_TYPES:
            problems.append(f"{where}: expect.{node} must be one of {', '.join(EVENT_TYPES)}")
    return Step(
        number=number,
        sender=str(sender),
        note=str(raw.get("note", "")),
        post=post if isinstance(post, dict) else None,
        retract=retract if isinstance(retract, str) else None,
        reason=str(raw.get("reason", "retracted by the sender")),
        expect={str(k): str(v) for k, v in expect.items()},
        fact_check=fact_check if isinstance(fact_check, dict) else None,
    )


def step_mismatches(
    step: Step, received: Mapping[str, list[str]], partners: Iterable[str]
) -> list[str]:
    """How what each partner received for `step` (event types of the step's alert, in order)
    differs from the step's expectations; empty when every expectation held."""
    found = []
    for node in sorted(partners):
        got = list(received.get(node, ()))
        wanted = step.expect.get(node)
        if wanted is None and got:
            found.append(f"step {step.number}: {node} received {', '.join(got)}, expected nothing")
        elif wanted is not None and got != [wanted]:
            shown = ", ".join(got) or "nothing"
            found.append(f"step {step.number}: {node} received {shown}, expected {wanted}")
    return found


@dataclass(slots=True)
class StepResult:
    """What one step did: the hub's answer, and per partner the event types it received for the
    step's alert (the sender included) or why it received none."""

    step: Step
    title: str
    tlp: str
    hub_id: str | None = None
    answer: dict[str, Any] = field(default_factory=dict)
    related: list[str] = field(default_factory=list)  # alert ids the hub links this one to
    received: dict[str, list[str]] = field(default_factory=dict)
    absent: dict[str, str] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # lines shown under the hub's answer

    def as_json(self) -> dict[str, Any]:
        return {
            "step": self.step.number,
            "sender": self.step.sender,
            "action": self.step.action,
            "alert_id": self.step.alert_id,
            "hub_id": self.hub_id,
            "answer": self.answer,
            "related": self.related,
            "received": self.received,
            "not_received": self.absent,
            "mismatches": self.mismatches,
        }
