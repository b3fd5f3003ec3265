"""E-mail messages of e-mail subscriptions: a confirmation, one event, a digest. Pure: events
(the JSON every delivery path sends) in, `EmailMessage` out.

Every message is plain text with an HTML alternative. The TLP marking is in the subject and on
the first line of the body, before any information, as FIRST's TLP 2.0 asks of e-mail; a digest
carries the most restrictive label of its items in the subject and each item's own label beside
it. Header values are made single-line (alert text never starts a header of its own), the HTML
escapes everything it shows, and indicators are defanged (hxxps://, example[.]org) so that no
mail client makes a malicious address a link."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid, parseaddr
from html import escape
from typing import Any

TLP_ORDER = ("CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED")
# Each label's meaning in a sentence (FIRST, Traffic Light Protocol 2.0), shown under it.
TLP_MEANING = {
    "CLEAR": "Disclosure is not limited.",
    "GREEN": "Limited disclosure: recipients may share it within their community, not publicly.",
    "AMBER": "Limited disclosure: recipients may share it only on a need-to-know basis within "
    "their organisation and its clients.",
    "AMBER+STRICT": "Limited disclosure: recipients may share it only within their organisation.",
    "RED": "For the named recipients only.",
}
# FIRST's colours: the label's text on a black background.
TLP_COLOUR = {
    "CLEAR": "#FFFFFF",
    "GREEN": "#33FF00",
    "AMBER": "#FFC000",
    "AMBER+STRICT": "#FFC000",
    "RED": "#FF2B2B",
}
MAX_HEADER_TEXT = 180
# Header lines unfolded up to RFC 5322's hard limit: the standard library folds a subject that
# starts with "[" before its first word, which readers show as a leading space.
POLICY = SMTP.clone(max_line_length=998)
_UNSAFE_HEADER = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")
TYPE_WORDS = {
    "alert.created": "New alert",
    "alert.corroborated": "Corroborated",
    "alert.updated": "Updated",
    "alert.retracted": "Retracted",
    "alert.fact_checked": "Fact-check",
    "alert.fact_check_retracted": "Fact-check retracted",
    "node.registered": "Node registered",
}


def header_text(value: Any, limit: int = MAX_HEADER_TEXT) -> str:
    """`value` as one header line: CR, LF and every other control character become a space,
    and it is cut at `limit` characters."""
    text = _UNSAFE_HEADER.sub(" ", str(value)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def defang(text: str) -> str:
    """An address made unclickable the way CERTs write them: hxxp(s)://, dots in [.]."""
    text = re.sub(r"^http", "hxxp", text, flags=re.IGNORECASE)
    scheme, sep, rest = text.partition("://")
    if not sep:
        return text.replace(".", "[.]")
    host, slash, path = rest.partition("/")
    return f"{scheme}://{host.replace('.', '[.]')}{slash}{path}"


def strictest(labels: list[str]) -> str:
    known = [t for t in labels if t in TLP_ORDER]
    return max(known, key=TLP_ORDER.index) if known else "CLEAR"


@dataclass(frozen=True, slots=True)
class Envelope:
    """Who a message is from and to, and the links it carries."""

    sender: str  # the From address (ALERTHUB_MAIL_FROM)
    to: str
    subscription_id: str
    unsubscribe_url: str
    alert_url: str  # "{base}/v1/alerts/" (the hub id is appended)


def _message(envelope: Envelope, subject: str, text: str, html: str) -> EmailMessage:
    msg = EmailMessage(policy=POLICY)
    domain = parseaddr(envelope.sender)[1].rpartition("@")[2] or "localhost"
    msg["From"] = envelope.sender
    msg["To"] = envelope.to
    msg["Subject"] = header_text(subject, 240)
    msg["Date"] = format_datetime(datetime.now().astimezone())
    msg["Message-ID"] = make_msgid(domain=domain)
    msg["Auto-Submitted"] = "auto-generated"
    msg["List-Id"] = f"alerthub subscription <{envelope.subscription_id}.alerthub.{domain}>"
    if envelope.unsubscribe_url:
        msg["List-Unsubscribe"] = f"<{envelope.unsubscribe_url}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


def _tlp_text(tlp: str) -> str:
    return f"TLP:{tlp}\n{TLP_MEANING.get(tlp, '')}\n"


def _tlp_html(tlp: str) -> str:
    colour = TLP_COLOUR.get(tlp, "#FFFFFF")
    return (
        f'<p><span style="background:#000000;color:{colour};font-weight:bold;'
        f'padding:2px 6px;font-family:monospace">TLP:{escape(tlp)}</span> '
        f"{escape(TLP_MEANING.get(tlp, ''))}</p>"
    )


def _footer(envelope: Envelope) -> tuple[str, str]:
    text = (
        f"\n--\nalerthub subscription {envelope.subscription_id}.\n"
        f"Stop these e-mails: {envelope.unsubscribe_url}\n"
    )
    html = (
        f'<hr><p style="font-size:smaller">alerthub subscription '
        f"{escape(envelope.subscription_id)}. "
        f'<a href="{escape(envelope.unsubscribe_url)}">Stop these e-mails</a>.</p>'
    )
    return text, html


def event_tlp(event: dict[str, Any]) -> str:
    alert = event.get("alert") or {}
    return str(alert.get("tlp") or "CLEAR")


def event_title(event: dict[str, Any]) -> str:
    kind = TYPE_WORDS.get(event["type"], event["type"])
    if event["type"] == "node.registered":
        node = event.get("node") or {}
        return f"{kind}: {node.get('name', '')} ({node.get('country') or '-'})"
    fact_check = event.get("fact_check")
    if fact_check is not None:
        verdict = fact_check["rating"]["alternate_name"]
        return f"{kind}: {verdict}: {fact_check['claim_reviewed']}"
    return f"{kind}: {(event.get('alert') or {}).get('title', '')}"


def _event_lines(event: dict[str, Any], envelope: Envelope) -> list[str]:
    """The event as lines of plain text (not yet escaped for HTML)."""
    if event["type"] == "node.registered":
        node = event.get("node") or {}
        return [f"{node.get('name', '')} ({node.get('id', '')}, {node.get('kind', '')}) now "
                f"receives what is shared with {node.get('country') or '-'}."]  # fmt: skip
    alert = event.get("alert") or {}
    lines = []
    fact_check = event.get("fact_check")
    if fact_check is not None:
        rating = fact_check["rating"]
        lines += [
            f'{fact_check["checker_name"]} rates the claim "{fact_check["claim_reviewed"]}": '
            f"{rating['alternate_name']} ({rating['value']} of {rating['best']}).",
            fact_check["summary"],
            f"Article: {fact_check['url']}",
        ]
        if fact_check.get("status") == "retracted":
            lines.append(f"Retracted: {fact_check.get('retraction_reason') or 'no reason given'}")
    lines += [
        f"{alert.get('title', '')}",
        f"{alert.get('kind', '')}, severity {alert.get('severity', '')}, from "
        f"{alert.get('sender', '')} ({alert.get('source_country') or '-'}), targets "
        f"{', '.join(alert.get('target_countries', [])) or '-'}",
    ]
    if alert.get("summary"):
        lines.append(str(alert["summary"]))
    lines += [f"Claim ({c.get('language', '')}): {c.get('text', '')}"
              for c in alert.get("claims", ())]  # fmt: skip
    lines += [f"URL: {defang(str(u))}" for u in alert.get("urls", ())]
    lines += [f"Indicator {i.get('type', '')}: {defang(str(i.get('value', '')))}"
              for i in alert.get("indicators", ())]  # fmt: skip
    if event.get("hub_id"):
        lines.append(f"In the hub: {envelope.alert_url}{event['hub_id']}")
    return lines


def _event_html(event: dict[str, Any], envelope: Envelope) -> str:
    lines = _event_lines(event, envelope)
    body = "".join(f"<p>{escape(line)}</p>" for line in lines)
    return f"<h2>{escape(event_title(event))}</h2>{body}"


def event_message(envelope: Envelope, event: dict[str, Any]) -> EmailMessage:
    """One event, as an `immediate` subscription sends it."""
    tlp = event_tlp(event)
    footer_text, footer_html = _footer(envelope)
    text = (
        "\n".join([_tlp_text(tlp), event_title(event), "", *_event_lines(event, envelope)])
        + footer_text
    )
    html = f"<html><body>{_tlp_html(tlp)}{_event_html(event, envelope)}{footer_html}</body></html>"
    return _message(envelope, f"[TLP:{tlp}] {event_title(event)}", text, html)


def digest_message(envelope: Envelope, events: list[dict[str, Any]], period: str) -> EmailMessage:
    """Several events in one message (`period`: e.g. "daily digest for 2026-11-21")."""
    tlp = strictest([event_tlp(e) for e in events])
    count = f"{len(events)} event" + ("" if len(events) == 1 else "s")
    subject = f"[TLP:{tlp}] alerthub {period}: {count}"
    footer_text, footer_html = _footer(envelope)
    text_parts = [_tlp_text(tlp), f"alerthub {period}: {count}", ""]
    html_parts = [_tlp_html(tlp), f"<h1>alerthub {escape(period)}: {escape(count)}</h1>"]
    for event in events:
        label = event_tlp(event)
        text_parts += [f"[TLP:{label}] {event_title(event)}", *_event_lines(event, envelope), ""]
        html_parts.append(_tlp_html(label) + _event_html(event, envelope))
    text = "\n".join(text_parts) + footer_text
    html = "<html><body>" + "".join(html_parts) + footer_html + "</body></html>"
    return _message(envelope, subject, text, html)


def confirmation_message(
    envelope: Envelope, confirm_url: str, owner: str, digest: str, max_tlp: str
) -> EmailMessage:
    """The double opt-in: nothing else is sent to the address until its link is followed."""
    what = f"alerts of {owner}'s alerthub subscription {envelope.subscription_id}"
    text = (
        f"{owner} asked alerthub to send {what} to this address ({digest}, labels up to "
        f"TLP:{max_tlp}).\n\nTo receive them, open this link and confirm:\n{confirm_url}\n\n"
        "If you did not expect this, ignore this message: nothing more will be sent.\n"
    )
    html = (
        f"<html><body><p>{escape(owner)} asked alerthub to send {escape(what)} to this address "
        f"({escape(digest)}, labels up to TLP:{escape(max_tlp)}).</p>"
        f'<p><a href="{escape(confirm_url)}">Confirm that you want them</a></p>'
        "<p>If you did not expect this, ignore this message: nothing more will be sent.</p>"
        "</body></html>"
    )
    unsent = Envelope(envelope.sender, envelope.to, envelope.subscription_id, "", "")
    return _message(unsent, "alerthub: confirm your subscription", text, html)
