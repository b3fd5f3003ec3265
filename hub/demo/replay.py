"""The demo's replay: register the nodes, subscribe the partners, play each step against the
running hub through alerthub_client, and check what every partner received."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import aiohttp

from alerthub_client import HubClient
from alerthub_client.errors import HubError, NotFound
from hub.delivery.filters import AlertFacts, SubscriptionFilter
from hub.demo.partners import Partner
from hub.demo.scenario import Plan, Scenario, Step, StepResult, step_mismatches
from hub.demo.view import (
    LOCAL_MARK,
    LOCAL_NOTE,
    answer_line,
    partner_lines,
    step_header,
    summary_table,
    verdict_lines,
)
from hub.interop.taxii import TAXII_MEDIA
from hub.nodes import Node
from hub.policy import Sharing, decide

FANOUT_WAIT_S = 15.0
LIVE_WAIT_S = 10.0
WEBHOOK_ACTIVE_WAIT_S = 15.0


def local_reason(
    alert: dict[str, Any], sender: dict[str, Any], partner: dict[str, Any], plan: Plan
) -> str:
    """Why `partner` does not get `alert` from `sender`, by the hub's own policy and filter
    code: for the alerts the hub does not explain to an operator who may not see them."""
    share = alert.get("share") or {}
    sharing = Sharing(
        sender=sender["id"],
        sender_country=sender["country"],
        tlp=alert["tlp"],
        recipients=frozenset(share.get("recipients", ())),
        withhold_from=frozenset(share.get("withhold_from", ()))
        | frozenset((sender.get("defaults") or {}).get("withhold_from", ())),
    )
    node = Node(
        partner["id"],
        partner["name"],
        partner["country"],
        partner["kind"],
        frozenset(partner["roles"]),
    )
    decision = decide(sharing, node)
    if not decision.deliver:
        return f"withheld: {decision.reason}"
    facts = AlertFacts.from_doc({**alert, "source_country": sender["country"]})
    mismatch = SubscriptionFilter.from_json(plan.filter).mismatch(facts)
    if mismatch is not None:
        return f"filtered out: {mismatch}"
    return "not received, though the policy and the filter allow it"


def explained(answer: dict[str, Any]) -> str:
    """One line from GET /v1/subscriptions/{id}/explain/{hub_id}."""
    verdict, reason = str(answer.get("verdict", "?")), answer.get("reason", "")
    if verdict == "withheld_by_policy":
        return f"withheld: {reason}"
    if verdict == "filtered_out":
        return f"filtered out: {reason}"
    return f"{verdict.replace('_', ' ')}: {reason}"


def _count(n: int, noun: str) -> str:
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{n} {noun if n == 1 else plural}"


class Replay:
    def __init__(
        self,
        base_url: str,
        operator_token: str,
        scenario: Scenario,
        nodes: tuple[dict[str, Any], ...],
        *,
        pause_s: float,
        json_path: Path | None,
        out: TextIO,
    ) -> None:
        self.base_url = base_url
        self.scenario = scenario
        self.profiles = {n["id"]: n for n in nodes}  # POST /v1/nodes bodies
        self.pause_s = pause_s
        self.json_path = json_path
        self.out = out
        self.operator = HubClient(base_url, operator_token)
        self.clients: dict[str, HubClient] = {}
        self.tokens: dict[str, str] = {}
        self.partners: list[Partner] = []
        self.results: list[StepResult] = []
        self.hub_ids: dict[str, str] = {}  # the sender's alert id -> hub id
        self.explained_locally = False

    def say(self, *lines: str) -> None:
        print(*lines, sep="\n", file=self.out, flush=True)

    async def run(self) -> int:
        """Set up, play every step, print the summary; 0 when every expectation held, else 1."""
        failure = None
        try:
            await self._setup()
            for step in self.scenario.steps:
                result = await self._play(step)
                self.results.append(result)
                deliveries = self._deliveries()
                self.say(
                    "",
                    *step_header(result),
                    *result.notes,
                    answer_line(result),
                    *partner_lines(result, [p.node for p in self.partners], deliveries),
                )
                if self.pause_s > 0 and step is not self.scenario.steps[-1]:
                    await asyncio.sleep(self.pause_s)
        except (HubError, TimeoutError) as e:
            failure = f"the scenario stopped at step {len(self.results) + 1}: {e}"
        mismatches = [m for r in self.results for m in r.mismatches]
        if failure is not None:
            mismatches.append(failure)
        else:
            mismatches += await self._taxii_read()
        self.say("", "Summary: what each partner received at each step", "")
        self.say(*summary_table(self.results, [p.node for p in self.partners], self._deliveries()))
        if self.explained_locally:
            self.say("", LOCAL_NOTE)
        self.say("", *verdict_lines(mismatches))
        if self.json_path is not None:
            try:
                self._write_json(mismatches)
            except OSError as e:
                print(f"alerthub demo: cannot write {self.json_path}: {e}", file=sys.stderr)
                return 1
        return 1 if mismatches else 0

    async def _taxii_read(self) -> list[str]:
        """A pull partner reads its subscription as a TAXII 2.1 collection, with Basic auth as
        OpenCTI does (docs/opencti-taxii.md): its reports must be the alerts its feed got. The
        mismatches, if any."""
        partner = next((p for p in self.partners if p.delivery == "pull"), None)
        if partner is None:
            return []
        auth = aiohttp.BasicAuth(partner.node, self.tokens[partner.node])
        collection = f"{self.base_url}/taxii2/alerthub/collections/{partner.subscription_id}"
        base = f"{collection}/objects/?limit=1000"
        reports: set[str] = set()
        objects, url = 0, base
        async with aiohttp.ClientSession() as session:
            while True:
                headers = {"Accept": TAXII_MEDIA}
                async with session.get(url, auth=auth, headers=headers) as resp:
                    if resp.status != 200:
                        return [f"TAXII: {partner.node}'s collection answered {resp.status}"]
                    page = await resp.json(content_type=None)
                for obj in page.get("objects", []):
                    objects += 1
                    if obj["type"] == "report":
                        reports.add(obj["external_references"][0]["external_id"])
                if not page.get("more"):
                    break
                url = f"{base}&next={page['next']}"
        fed = {
            s.hub_id
            for s in partner.live
            if s.hub_id and s.type.startswith("alert.") and "fact_check" not in s.type
        }
        self.say(
            "",
            f"TAXII 2.1: {partner.node} reads its pull subscription as a collection, as OpenCTI "
            f"would: {len(reports)} reports in {objects} STIX 2.1 objects with TLP 2.0 markings",
        )
        if reports != fed:
            return [
                f"TAXII: {partner.node}'s collection holds {len(reports)} reports, "
                f"its feed {len(fed)} alerts"
            ]
        return []

    def _described(self, partner: Partner) -> str:
        wanted = self.scenario.plans[partner.node].filter
        return f"{partner.node} {partner.delivery}" + (f" {json.dumps(wanted)}" if wanted else "")

    def _deliveries(self) -> dict[str, str]:
        return {p.node: p.delivery for p in self.partners}

    async def _setup(self) -> None:
        for node_id, profile in self.profiles.items():
            answer = await self.operator.create_node(profile)
            self.tokens[node_id] = answer["token"]
            self.clients[node_id] = HubClient(self.base_url, answer["token"])
        self.say(
            "nodes: "
            + ", ".join(f"{p['id']} ({p['country']}, {p['kind']})" for p in self.profiles.values())
        )
        for node_id, plan in self.scenario.plans.items():
            partner = Partner(node_id, plan.delivery, self.clients[node_id])
            self.partners.append(partner)
            await partner.subscribe(plan.filter)
        for partner in self.partners:
            await partner.wait_active(WEBHOOK_ACTIVE_WAIT_S)
        self.say("subscriptions: " + ", ".join(self._described(p) for p in self.partners))

    async def _play(self, step: Step) -> StepResult:
        sender = self.clients[step.sender]
        notes: list[str] = []
        if step.post is not None:
            alert = step.post
            answer = await sender.post_alert(alert)
            hub_id = answer["hub_id"]
            self.hub_ids[step.alert_id] = hub_id
            related = (await sender.get_alert(hub_id)).get("related", [])
        elif step.fact_check is not None:
            alert = self.scenario.posted()[step.alert_id]
            hub_id = self.hub_ids[step.alert_id]
            notes = await self._triage_queue(step.sender, hub_id)
            answer = await sender.post_fact_check(hub_id, step.fact_check["body"])
            related = []
        else:
            alert = self.scenario.posted()[step.alert_id]
            hub_id = self.hub_ids[step.alert_id]
            answer = await sender.retract(hub_id, step.reason) or {}
            related = []
        result = StepResult(step, str(alert["title"]), str(alert["tlp"]), hub_id, answer)
        result.notes = notes
        alert_ids = {hub: alert_id for alert_id, hub in self.hub_ids.items()}
        result.related = [alert_ids.get(other, other) for other in related]
        await self._fanned_out()
        for partner in self.partners:
            new = await partner.feed_since_last()
            live = {e.event_id for e in new}
            if partner.delivery != "pull" and not await partner.wait_live(live, LIVE_WAIT_S):
                why = f" ({partner.reader_error})" if partner.reader_error else ""
                result.mismatches.append(
                    f"step {step.number}: {partner.node}'s feed holds events its "
                    f"{partner.delivery} reader did not get within {LIVE_WAIT_S:.0f} s{why}"
                )
            for event in new:
                # A registration in the partner's country belongs to no step (the demo
                # registers every node before it subscribes, so none arrives).
                if event.hub_id and event.hub_id != hub_id:
                    result.mismatches.append(
                        f"step {step.number}: {partner.node} received {event.type} for "
                        f"{event.hub_id}, an alert of another step"
                    )
            types = [e.type for e in new if e.hub_id == hub_id]
            if types:
                result.received[partner.node] = types
            else:
                result.absent[partner.node] = await self._why_not(partner, step, hub_id, alert)
        result.mismatches.extend(step_mismatches(step, result.received, self.scenario.plans))
        return result

    async def _triage_queue(self, checker: str, hub_id: str) -> list[str]:
        """The checker's queue as it reads it before publishing: claims not yet fact-checked,
        the most widely spread first, with the one the step checks marked."""
        client = self.clients[checker]
        target = (await client.get_alert(hub_id))["cluster_id"]
        page = await client.clusters(fact_checked="false", sort="spread", limit=5)
        lines = [f"  {checker}'s triage queue (not yet fact-checked, most spread first):"]
        for n, cluster in enumerate(page["clusters"], start=1):
            spread = cluster["spread"]
            mark = "  <- checked now" if cluster["cluster_id"] == target else ""
            lines.append(
                f"    {n}. {cluster['title']}: {_count(spread['countries'], 'country')} "
                f"({', '.join(cluster['sender_countries'])}), "
                f"{_count(spread['languages'], 'language')}, "
                f"{_count(spread['reports'], 'report')}{mark}"
            )
        return lines

    async def _fanned_out(self) -> None:
        """Until fan-out has handled every logged event (so each feed holds what it will)."""
        deadline = time.monotonic() + FANOUT_WAIT_S
        while (await self.operator.status())["fanout"]["lag"] > 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fan-out did not catch up within {FANOUT_WAIT_S:.0f} s")
            await asyncio.sleep(0.02)

    async def _why_not(self, partner: Partner, step: Step, hub_id: str, alert: dict) -> str:
        path = f"/v1/subscriptions/{partner.subscription_id}/explain/{hub_id}"
        try:
            answer = await self.operator.request("GET", path) or {}
        except NotFound:
            self.explained_locally = True
            plan = self.scenario.plans[partner.node]
            posts = [s for s in self.scenario.steps if s.post is not None]
            poster = next(s.sender for s in posts if s.alert_id == step.alert_id)
            sender = self.profiles[poster]
            reason = local_reason(alert, sender, self.profiles[partner.node], plan)
            text = reason + LOCAL_MARK
        else:
            if step.retract is not None and answer.get("verdict") == "received":
                return "received the report, but not its retraction"
            text = explained(answer)
        if step.fact_check is not None:
            return f"not sent the verdict, posted on a report it may not see ({text})"
        return f"never had it: {text}" if step.retract is not None else text

    def _write_json(self, mismatches: list[str]) -> None:
        alert_ids = {hub_id: alert_id for alert_id, hub_id in self.hub_ids.items()}
        report = {
            "ok": not mismatches,
            "mismatches": mismatches,
            "hub_url": self.base_url,
            "scenario": self.scenario.name,
            "partners": {
                p.node: {
                    "delivery": p.delivery,
                    "subscription_id": p.subscription_id,
                    "events": [
                        {
                            "event_id": e.event_id,
                            "type": e.type,
                            "hub_id": e.hub_id,
                            "alert_id": alert_ids.get(e.hub_id),
                        }
                        for e in p.live
                    ],
                }
                for p in self.partners
            },
            "steps": [r.as_json() for r in self.results],
        }
        assert self.json_path is not None
        self.json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")

    async def close(self) -> None:
        for partner in self.partners:
            await partner.close()
        for client in self.clients.values():
            await client.close()
        await self.operator.close()
