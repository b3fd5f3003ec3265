"""Why one subscription did or did not receive one alert, in words (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.delivery.filters import AlertFacts
from hub.delivery.subscriptions import Subscription
from hub.ids import stream_id
from hub.ingest.alert_views import StoredAlert
from hub.nodes import Node
from hub.policy import decide


@dataclass(frozen=True, slots=True)
class WebhookState:
    """Where the webhook delivery of the alert's latest event stands."""

    dead_letter: bool
    retrying: bool


@dataclass(frozen=True, slots=True)
class Fanned:
    """What fan-out did with the alert for one subscription."""

    received: bool  # the subscription's feed holds a report of it
    logged_as: str | None  # the log id of the alert's latest report or revision
    webhook: WebhookState | None = None  # for a webhook that received it


def explain(
    sub: Subscription, owner: Node | None, alert: StoredAlert, fanned: Fanned
) -> dict[str, Any]:
    """The policy decision and the filter decision for `sub`'s owner and `alert` as they stand
    now, whether the subscription's feed received the report, and one verdict with its reason.
    `received` is what fan-out did; the decisions are what it would do now (an update or a
    changed filter can differ from what it saw then)."""
    policy = decide(alert.sharing, owner) if owner is not None else None
    mismatch = sub.filter.mismatch(AlertFacts.from_doc(alert.doc))
    verdict, reason = _verdict(sub, owner, alert, fanned, mismatch)
    return {
        "subscription_id": sub.id,
        "hub_id": alert.hub_id,
        "owner": sub.owner,
        "received": fanned.received,
        "verdict": verdict,
        "reason": reason,
        "policy": None if policy is None else {"deliver": policy.deliver, "reason": policy.reason},
        "filter": {"matches": mismatch is None, "reason": mismatch or "the filter matches"},
    }


def _verdict(
    sub: Subscription,
    owner: Node | None,
    alert: StoredAlert,
    fanned: Fanned,
    mismatch: str | None,
) -> tuple[str, str]:
    if fanned.received:
        if owner is not None and not decide(alert.sharing, owner).deliver:
            return "received", (
                "the feed received it, but the sharing has changed since: reads and deliveries "
                "now leave it out"
            )
        if fanned.webhook is not None and fanned.webhook.dead_letter:
            return "received", (
                "the feed received it, but the webhook delivery of its latest event failed every "
                "attempt: it is a dead letter (replay it from the dead letters)"
            )
        if fanned.webhook is not None and fanned.webhook.retrying:
            return "received", (
                "the feed received it; the webhook delivery of its latest event failed and waits "
                "for another attempt"
            )
        return "received", "the subscription's feed received this alert"
    if owner is None or owner.revoked_at is not None:
        return "owner_revoked", f"the owner {sub.owner} is revoked or gone"
    if _logged_before(fanned.logged_as, alert.received_at, sub.start_after):
        return "before_subscription", (
            "the alert's latest report or revision was logged before the subscription began "
            f"({sub.created_at}); a subscription gets events logged after it"
        )
    policy = decide(alert.sharing, owner)
    if not policy.deliver:
        return "withheld_by_policy", policy.reason
    if mismatch is not None:
        return "filtered_out", mismatch
    return "not_received", (
        "the policy and the filter allow it now; it was not received because fan-out has not "
        "reached it yet, or the filter, the sharing or the alert changed since it was fanned out"
    )


def _logged_before(logged_as: str | None, received_at: str, start_after: str) -> bool:
    """Whether the alert's latest event is at or before the subscription's start, both ids of
    the one event log (so one clock). An alert stored before `logged_as` was recorded falls
    back to its storage time, which comes from the hub's clock rather than Redis's."""
    if logged_as is not None:
        return stream_id(logged_as) <= stream_id(start_after)
    try:
        stored = datetime.fromisoformat(received_at.replace("Z", "+00:00"))
    except ValueError:
        return False
    return int(stored.timestamp() * 1000) <= stream_id(start_after)[0]
