"""A subscription's events as an Atom feed (RFC 4287) for ordinary feed readers. Pure: events
(the JSON every delivery path sends) in, XML bytes out.

Each entry carries its TLP marking in the title (as FIRST's TLP 2.0 asks of any medium: the label
where the reader sees it first) and as a category; text the XML 1.0 grammar forbids (most C0
control characters, which JSON can carry) is dropped, so every document is well-formed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape
from typing import Any
from xml.etree import ElementTree as ET

ATOM_NS = "http://www.w3.org/2005/Atom"
TLP_SCHEME = "https://www.first.org/tlp/"
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
TYPE_WORDS = {
    "alert.created": "New alert",
    "alert.corroborated": "Corroborated",
    "alert.updated": "Updated",
    "alert.retracted": "Retracted",
    "alert.fact_checked": "Fact-check",
    "alert.fact_check_retracted": "Fact-check retracted",
    "node.registered": "Node registered",
}

ET.register_namespace("", ATOM_NS)


def xml_text(value: Any) -> str:
    """`value` as text XML 1.0 can hold."""
    return _NOT_XML.sub("", str(value))


@dataclass(frozen=True, slots=True)
class FeedHead:
    feed_id: str  # a tag: URI for the subscription
    title: str
    self_url: str
    alert_url: str  # "{base}/v1/alerts/" (the hub id is appended)
    updated: str  # RFC 3339: the newest entry's time, or the subscription's creation


def _el(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    attributes = {k: xml_text(v) for k, v in attrs.items()}
    element = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attributes)
    if text is not None:
        element.text = xml_text(text)
    return element


def entry_title(event: dict[str, Any]) -> str:
    kind = TYPE_WORDS.get(event["type"], event["type"])
    if event["type"] == "node.registered":
        node = event.get("node") or {}
        return f"{kind}: {node.get('name', node.get('id', ''))} ({node.get('country') or '-'})"
    alert = event.get("alert") or {}
    tlp = f"[TLP:{alert.get('tlp', '?')}]"
    fact_check = event.get("fact_check")
    if fact_check is not None:
        verdict = fact_check["rating"]["alternate_name"]
        return f"{tlp} {kind}: {verdict} — {fact_check['claim_reviewed']}"
    return f"{tlp} {kind}: {alert.get('title', '')}"


def entry_html(event: dict[str, Any]) -> str:
    """The entry's content: what the event says, every value escaped."""
    if event["type"] == "node.registered":
        node = event.get("node") or {}
        return (
            f"<p>{escape(str(node.get('name', '')))} ({escape(str(node.get('id', '')))}) now "
            f"reads what is shared with {escape(str(node.get('country') or ''))}.</p>"
        )
    alert = event.get("alert") or {}
    parts = [f"<p><strong>TLP:{escape(str(alert.get('tlp', '')))}</strong></p>"]
    fact_check = event.get("fact_check")
    if fact_check is not None:
        parts.append(
            f"<p>{escape(fact_check['checker_name'])} rates the claim "
            f"<q>{escape(fact_check['claim_reviewed'])}</q> "
            f"<strong>{escape(fact_check['rating']['alternate_name'])}</strong> "
            f"({fact_check['rating']['value']}/5): {escape(fact_check['summary'])}</p>"
            f'<p><a href="{escape(fact_check["url"])}">{escape(fact_check["url"])}</a></p>'
        )
        if fact_check.get("status") == "retracted":
            parts.append(f"<p>Retracted: {escape(fact_check.get('retraction_reason') or '')}</p>")
    parts.append(
        f"<p>{escape(str(alert.get('title', '')))} — {escape(str(alert.get('severity', '')))}, "
        f"from {escape(str(alert.get('sender', '')))} ({escape(str(alert.get('source_country')))})"
        "</p>"
    )
    if alert.get("summary"):
        parts.append(f"<p>{escape(str(alert['summary']))}</p>")
    for claim in alert.get("claims", ()):
        parts.append(f"<blockquote>{escape(str(claim.get('text', '')))}</blockquote>")
    return "".join(parts)


def render_feed(head: FeedHead, events: list[dict[str, Any]]) -> bytes:
    """The Atom document: `events` newest first, as feed readers show them."""
    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    _el(feed, "id", head.feed_id)
    _el(feed, "title", head.title)
    _el(feed, "updated", head.updated)
    _el(feed, "link", rel="self", href=head.self_url, type="application/atom+xml")
    _el(feed, "generator", "alerthub")
    author = _el(feed, "author")
    _el(author, "name", "alerthub")
    for event in events:
        entry = _el(feed, "entry")
        _el(entry, "id", f"{head.feed_id}:event:{event['id']}")
        _el(entry, "title", entry_title(event))
        _el(entry, "updated", event["occurred_at"])
        _el(entry, "published", event["occurred_at"])
        alert = event.get("alert") or {}
        entry_author = _el(entry, "author")
        _el(entry_author, "name", alert.get("sender") or "alerthub")
        _el(entry, "category", term=event["type"], label=TYPE_WORDS.get(event["type"], ""))
        if alert.get("tlp"):
            _el(entry, "category", term=f"TLP:{alert['tlp']}", scheme=TLP_SCHEME)
        fact_check = event.get("fact_check")
        if fact_check is not None:
            _el(entry, "link", rel="alternate", href=fact_check["url"])
        if event.get("hub_id"):
            rel = "related" if fact_check is not None else "alternate"
            _el(entry, "link", rel=rel, href=head.alert_url + event["hub_id"])
        if alert.get("summary"):
            _el(entry, "summary", alert["summary"], type="text")
        _el(entry, "content", entry_html(event), type="html")
    body = ET.tostring(feed, encoding="unicode")
    return ('<?xml version="1.0" encoding="utf-8"?>\n' + body).encode("utf-8")
