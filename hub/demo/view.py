"""What `alerthub demo` prints: pure functions from results to lines of text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hub.demo.scenario import StepResult
from hub.errors import counted

NAME_WIDTH = 13
SHORT_TYPES = {
    "alert.created": "new",
    "alert.corroborated": "corr",
    "alert.updated": "upd",
    "alert.retracted": "retr",
    "alert.fact_checked": "fc",
    "alert.fact_check_retracted": "fc-r",
}
LOCAL_MARK = " *"
LOCAL_NOTE = (
    "* the hub explains only alerts the operator may see (TLP:CLEAR and GREEN); for AMBER and "
    "RED the reason is the hub's sharing policy (hub.policy) applied by the demo."
)


def via_label(delivery: str) -> str:
    return "webhook, signature verified" if delivery == "webhook" else delivery


def step_header(result: StepResult) -> list[str]:
    step = result.step
    if step.post is not None:
        head = f"step {step.number}: {step.sender} posts {result.title} [TLP:{result.tlp}]"
    elif step.fact_check is not None:
        head = (
            f"step {step.number}: {step.sender} publishes a fact-check on {result.title} "
            f"[TLP:{result.tlp}]"
        )
    else:
        head = f"step {step.number}: {step.sender} retracts {result.title} [TLP:{result.tlp}]"
    lines = [head]
    if step.note:
        lines.append(f"  ({step.note})")
    return lines


def answer_line(result: StepResult) -> str:
    """The hub's answer to the sender, in one line."""
    answer = result.answer
    if result.step.fact_check is not None:
        verdict = result.step.fact_check["body"]["rating"]["alternate_name"]
        return (
            f"  hub: {answer.get('status', '?')} fact-check {answer.get('fact_check_id', '')} "
            f"({verdict}) on {result.hub_id} (cluster {answer.get('cluster_id', '')})"
        )
    if result.step.post is None:
        return f"  hub: retracted {result.hub_id}, reason: {result.step.reason}"
    status = answer.get("status", "?")
    text = f"  hub: {status} {answer.get('hub_id', '')}"
    if answer.get("duplicate_of"):
        text += f", corroborates {answer['duplicate_of']}"
    if answer.get("cluster_id"):
        text += f" (cluster {answer['cluster_id']})"
    if result.related:
        text += f"\n  related (shares an indicator, URL or media hash): {', '.join(result.related)}"
    return text


def partner_lines(
    result: StepResult, partners: Sequence[str], deliveries: Mapping[str, str]
) -> list[str]:
    """One line per partner: ✓ with the event type(s) and how it came, or ✗ with the reason."""
    lines = []
    for node in partners:
        got = result.received.get(node)
        if got:
            types = ", ".join(got)
            own = "checker" if result.step.fact_check is not None else "sender"
            sender = f" (the {own}'s own feed)" if node == result.step.sender else ""
            via = via_label(deliveries.get(node, "?"))
            lines.append(f"  ✓ {node:<{NAME_WIDTH}} {types:<20} via {via}{sender}")
        else:
            reason = result.absent.get(node, "received nothing")
            lines.append(f"  ✗ {node:<{NAME_WIDTH}} {reason}")
    lines.extend(f"  ! {m}" for m in result.mismatches)
    return lines


def summary_table(
    results: Sequence[StepResult], partners: Sequence[str], deliveries: Mapping[str, str]
) -> list[str]:
    """Partner × step: what each partner received at each step ("·" for nothing)."""
    width = 5
    head = f"{'partner':<{NAME_WIDTH}} {'via':<8}" + "".join(
        f"{r.step.number:>{width}}" for r in results
    )
    lines = [head, "-" * len(head)]
    for node in partners:
        cells = []
        for r in results:
            got = r.received.get(node) or []
            cells.append("+".join(SHORT_TYPES.get(t, t) for t in got) or "·")
        row = f"{node:<{NAME_WIDTH}} {deliveries.get(node, '?'):<8}"
        lines.append(row + "".join(f"{c:>{width}}" for c in cells))
    lines.append("")
    lines.append(
        "new = alert.created, corr = alert.corroborated, retr = alert.retracted, "
        "fc = alert.fact_checked, · = nothing"
    )
    lines.extend(f"step {r.step.number:>2}: {r.step.alert_id:<18} {r.title}" for r in results)
    return lines


def closing_lines(
    url: str,
    operator_token: str,
    tokens: Mapping[str, str],
    subscriptions: Mapping[str, str],
    waiting: bool,
) -> list[str]:
    """Where to look next, with every token (shown only by this run) and subscription id."""
    lines = [
        f"Status page: {url}/status  (sign in with the operator token)",
        f"  {'operator':<14} {operator_token}",
    ]
    for node, token in tokens.items():
        sub = f"  subscription {subscriptions[node]}" if node in subscriptions else ""
        lines.append(f"  {node:<14} {token}{sub}")
    reader = next(iter(subscriptions), None)
    if reader is not None:
        lines += [
            "Follow a partner's feed live, for example:",
            f"  ALERTHUB_URL={url} ALERTHUB_TOKEN={tokens[reader]} \\",
            f"    alerthub-client tail {subscriptions[reader]}",
        ]
    if waiting:
        lines.append("The hub keeps running: explore it, then press Ctrl-C to stop.")
    return lines


def verdict_lines(mismatches: Sequence[str]) -> list[str]:
    if not mismatches:
        return ["Every expectation of the scenario held."]
    head = f"{counted(len(mismatches), 'expectation')} did not hold:"
    return [head, *(f"  {m}" for m in mismatches)]
