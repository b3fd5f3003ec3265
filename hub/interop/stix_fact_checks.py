"""A fact-check → STIX 2.1, on its own: a `note` on the report of the alert it was posted on,
by the fact-checker's `identity`, marked with that alert's TLP (a fact-check is shared no wider
than its report). Pure. The note has the id that `stix.alert_objects` gives the same fact-check
inside an alert's objects, so both are versions of one object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hub.interop.stix import Sender, shared_sender_objects
from hub.interop.stix_parts import (
    TLP_IDS,
    fact_check_note,
    identity_id,
    report_id,
    stix_id,
    stix_time,
    tlp_marking,
)


@dataclass(frozen=True, slots=True)
class FactCheckVersion:
    """One stored version of a fact-check, with what STIX needs of the alert it is on."""

    fact_check_id: str
    hub_id: str  # the alert it was posted on
    tlp: str  # that alert's
    doc: dict[str, Any]
    checker: Sender
    received_at: str
    updated_at: str | None = None
    retracted_at: str | None = None
    status: str = "active"

    @property
    def modified(self) -> str:
        if self.status == "retracted" and self.retracted_at:
            return self.retracted_at
        return self.updated_at or self.received_at


def fact_check_objects(check: FactCheckVersion) -> list[dict[str, Any]]:
    """The note, then the checker's identity and location, then the markings they use."""
    created = stix_time(check.received_at)
    note: dict[str, Any] = {
        "type": "note",
        "spec_version": "2.1",
        "id": stix_id("note", check.hub_id, f"fact-check/{check.fact_check_id}"),
        "created": created,
        "modified": max(created, stix_time(check.modified)),
        "created_by_ref": identity_id(check.checker.id),
        **fact_check_note(
            {**check.doc, "fact_check_id": check.fact_check_id}, report_id(check.hub_id)
        ),
        "object_marking_refs": [TLP_IDS[check.tlp]],
    }
    if check.status == "retracted":
        note["revoked"] = True
    used = {"CLEAR", check.tlp}
    markings = [tlp_marking(tlp) for tlp in TLP_IDS if tlp in used]
    return [note, *shared_sender_objects(check.checker), *markings]
