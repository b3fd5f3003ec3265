"""Subscription filters, pure: each field narrows, empty lists match everything."""

from __future__ import annotations

import pytest

from hub.delivery.filters import AlertFacts, SubscriptionFilter

ALERT = AlertFacts.from_doc(
    {
        "kind": "disinformation",
        "severity": "high",
        "source_country": "RS",
        "target_countries": ["XK", "RS"],
        "tags": ["kfor"],
        "languages": ["sr-Cyrl"],
    }
)


@pytest.mark.parametrize(
    ("filter_", "matches"),
    [
        ({}, True),
        ({"kinds": ["disinformation"]}, True),
        ({"kinds": ["threat"]}, False),
        ({"min_severity": "high"}, True),
        ({"min_severity": "critical"}, False),
        ({"min_severity": "low"}, True),
        ({"source_countries": ["RS", "AL"]}, True),
        ({"source_countries": ["AL"]}, False),
        ({"target_countries": ["XK"]}, True),
        ({"target_countries": ["ME"]}, False),
        ({"tags_any": ["kfor", "other"]}, True),
        ({"tags_any": ["phishing"]}, False),
        ({"languages": ["sr"]}, True),
        ({"languages": ["sr-Cyrl"]}, True),
        ({"languages": ["sr-cyrl"]}, True),
        ({"languages": ["sr-Latn"]}, False),
        ({"languages": ["s"]}, False),
        ({"kinds": ["disinformation"], "target_countries": ["ME"]}, False),
    ],
)
def test_filter_fields(filter_: dict, matches: bool) -> None:
    """Each filter field admits or refuses the example alert as API.md describes."""
    sub_filter = SubscriptionFilter.from_json(filter_)
    assert sub_filter.matches(ALERT) is matches
    assert (sub_filter.mismatch(ALERT) is None) is matches


def test_mismatch_says_why() -> None:
    """A refusal names the field and the values, for operators asking why."""
    reason = SubscriptionFilter.from_json({"min_severity": "critical"}).mismatch(ALERT)
    assert reason == "severity high is below critical"


def test_json_round_trip() -> None:
    """as_json lists every field, sorted, and reads back to the same filter."""
    sub_filter = SubscriptionFilter.from_json({"kinds": ["threat"], "languages": ["sq", "mk"]})
    data = sub_filter.as_json()
    assert data["languages"] == ["mk", "sq"] and data["min_severity"] is None
    assert SubscriptionFilter.from_json(data) == sub_filter
