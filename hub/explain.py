"""Why one subscription did or did not receive one alert, in words (pure)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hub.alert_views import StoredAlert
from hub.filters import AlertFacts
from hub.ids import stream_id
from hub.nodes import Node
from hub.policy import decide
from hub.subscriptions import Subscription


def explain(
    sub: Subscription, owner: Node | None, alert: StoredAlert, received: bool
) -> dict[str, Any]:
    """The policy decision and the filter decision for `sub`'s owner and `alert` as they stand
    now, whether the subscription's feed received the report, and one verdict with its reason.
    `received` is what fan-out did; the decisions are what it would do now (an update or a
    changed filter can differ from what it saw then)."""
    policy = decide(alert.sharing, owner) if owner is not None else None
    mismatch = sub.filter.mismatch(AlertFacts.from_doc(alert.doc))
    verdict, reason = _verdict(sub, owner, alert, received, mismatch)
    return {
        "subscription_id": sub.id,
        "hub_id": alert.hub_id,
        "owner": sub.owner,
        "received": received,
        "verdict": verdict,
        "reason": reason,
        "policy": None if policy is None else {"deliver": policy.deliver, "reason": policy.reason},
        "filter": {"matches": mismatch is None, "reason": mismatch or "the filter matches"},
    }


def _verdict(
    sub: Subscription,
    owner: Node | None,
    alert: StoredAlert,
    received: bool,
    mismatch: str | None,
) -> tuple[str, str]:
    if received:
        if owner is not None and not decide(alert.sharing, owner).deliver:
            return "received", (
                "the feed received it, but the sharing has changed since: reads and deliveries "
                "now leave it out"
            )
        return "received", "the subscription's feed received this alert"
    if owner is None or owner.revoked_at is not None:
        return "owner_revoked", f"the owner {sub.owner} is revoked or gone"
    if _stored_before(alert.received_at, sub.start_after):
        return "before_subscription", (
            f"the alert was stored at {alert.received_at}, before the subscription began "
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


def _stored_before(received_at: str, start_after: str) -> bool:
    try:
        stored = datetime.fromisoformat(received_at.replace("Z", "+00:00"))
        stored_ms = int(stored.timestamp() * 1000)
    except ValueError:
        return False
    return stored_ms <= stream_id(start_after)[0]
