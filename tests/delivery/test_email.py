"""E-mail delivery against a real SMTP server on loopback (aiosmtpd, STARTTLS required): double
opt-in, digests, TLP limits, 4xx retried, 5xx dead-lettered and paused, headers safe from
injection, HTML escaped, unsubscribe by link and by RFC 8058 one-click."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.app import create_app
from hub.delivery.mail import Envelope, event_message
from hub.ingest.validation import SchemaSet
from hub.settings import Settings
from tests.conftest import Api, unique_threat
from tests.delivery.test_webhooks import wait_status
from tests.mailserver import MailServer, Received

pytestmark = pytest.mark.timeout(60)
DESK = "desk@factcheck.example"
PERIOD_S = 2.0  # the test hub's "hourly" period


@pytest.fixture
def mail_server(tmp_path: Path) -> Iterator[MailServer]:
    server = MailServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
async def mapi(
    aiohttp_client: Any,
    delivery_settings: Settings,
    schema_set: SchemaSet,
    mail_server: MailServer,
) -> AsyncIterator[Api]:
    """A hub that sends e-mail through `mail_server`, with short digest periods."""
    settings = dataclasses.replace(
        delivery_settings,
        smtp_url=mail_server.url(),
        smtp_ca_file=mail_server.ca_file,
        smtp_timeout_s=5.0,
        digest_periods_s=(PERIOD_S, 2 * PERIOD_S),
        mail_from="alerthub <hub@alerthub.example>",
    )
    client = await aiohttp_client(create_app(settings, schema_set))
    api = Api(client)
    await api.add_node("al-cert", "AL")
    await api.add_node("rs-cert", "RS")
    yield api


async def subscribe_by_mail(api: Api, server: MailServer, node: str = "rs-cert",
                            confirm: bool = True, **delivery: Any) -> str:  # fmt: skip
    """An e-mail subscription of `node` to DESK, confirmed by following the link (unless not
    `confirm`); its id."""
    before = len(server.messages())
    sub = await api.subscribe(node, {"type": "email", "to": DESK, **delivery})
    assert sub["status"] == "pending"
    (confirmation,) = (await server.wait_for(before + 1))[before:]
    assert confirmation.rcpt_tos == [DESK]
    assert confirmation.message["Subject"] == "alerthub: confirm your subscription"
    link = re.search(r"https?://\S+/v1/email/confirm/\S+", confirmation.part("plain"))
    assert link is not None
    if confirm:
        path = "/" + link[0].split("://", 1)[1].split("/", 1)[1]
        page = await api.client.get(path)  # a link scanner's GET confirms nothing
        assert page.status == 200 and '<form method="post"' in await page.text()
        _, current = await api.get(node, f"/v1/subscriptions/{sub['id']}")
        assert current["status"] == "pending"
        resp = await api.client.post(path)
        assert resp.status == 200
        _, current = await api.get(node, f"/v1/subscriptions/{sub['id']}")
        assert current["status"] == "active", current
    return sub["id"]


async def post(api: Api, node: str, alert_id: str, **changes: Any) -> str:
    status, body = await api.post(node, unique_threat(alert_id, **changes))
    assert status == 201, body
    return body["hub_id"]


def hub_ids(message: Received) -> list[str]:
    return re.findall(r"/v1/alerts/([0-9A-Z]{26})", message.part("plain"))


async def test_nothing_is_sent_before_the_address_confirms(
    mapi: Api, mail_server: MailServer
) -> None:
    """A new e-mail subscription sends only a confirmation link; an alert posted meanwhile is
    sent once the link is followed (by POST: opening it confirms nothing)."""
    sub = await subscribe_by_mail(mapi, mail_server, confirm=False)
    hub_id = await post(mapi, "al-cert", "t-1")
    await mapi.wait_for_feed("rs-cert", sub, 1, last=hub_id)
    # The worker looks at its feed every second at the latest: two looks, and still only the
    # confirmation went out.
    await asyncio.sleep(2.5)
    assert len(mail_server.messages()) == 1
    assert mail_server.rcpt_attempts == [DESK]
    link = re.search(r"/v1/email/confirm/\S+", mail_server.messages()[0].part("plain"))
    assert link is not None
    assert (await mapi.client.post(link[0])).status == 200
    (_, alert) = await mail_server.wait_for(2)
    assert hub_ids(alert) == [hub_id]
    assert alert.message["Subject"].startswith("[TLP:GREEN] New alert: ")
    assert (await mapi.client.post(link[0])).status == 404  # a link confirms once


async def test_digests_group_the_events_of_each_period(mapi: Api, mail_server: MailServer) -> None:
    """An hourly subscription gets one message per ended period with every event of it, an
    immediate one a message per event."""
    hourly = await subscribe_by_mail(mapi, mail_server, digest="hourly")
    confirmations = len(mail_server.messages())
    # Start at the beginning of a period, so that three posts fall in one.
    await asyncio.sleep(PERIOD_S - time.time() % PERIOD_S + 0.05)
    first = [await post(mapi, "al-cert", f"t-{n}") for n in range(3)]
    await asyncio.sleep(PERIOD_S - time.time() % PERIOD_S + 0.05)
    second = [await post(mapi, "al-cert", "t-3")]
    found = await mail_server.wait_for(confirmations + 2, within=4 * PERIOD_S)
    one, two = found[confirmations:]
    assert hub_ids(one) == first and hub_ids(two) == second
    assert re.match(r"\[TLP:GREEN\] alerthub hourly digest for .+: 3 events$",
                    one.message["Subject"])  # fmt: skip
    assert two.message["Subject"].endswith(": 1 event")
    _, sub = await mapi.get("rs-cert", f"/v1/subscriptions/{hourly}")
    assert sub["delivery"] == {"type": "email", "to": DESK, "digest": "hourly",
                               "max_tlp": "GREEN"}  # fmt: skip


async def test_immediate_sends_one_message_per_event(mapi: Api, mail_server: MailServer) -> None:
    """An immediate subscription sends each event on its own, in feed order."""
    await subscribe_by_mail(mapi, mail_server)
    posted = [await post(mapi, "al-cert", f"t-{n}") for n in range(3)]
    found = await mail_server.wait_for(4)
    assert [hub_ids(m) for m in found[1:]] == [[h] for h in posted]


async def test_only_clear_and_green_unless_the_owner_opts_in(
    mapi: Api, mail_server: MailServer
) -> None:
    """By default an AMBER alert is not mailed; a subscription whose owner set max_tlp AMBER
    gets it, marked TLP:AMBER in the subject and on the first line; RED never goes."""
    await subscribe_by_mail(mapi, mail_server)
    amber_sub = await subscribe_by_mail(mapi, mail_server, max_tlp="AMBER+STRICT")
    amber = await post(mapi, "al-cert", "t-amber", tlp="AMBER")
    await post(mapi, "al-cert", "t-red", tlp="RED", share={"recipients": ["rs-cert"]})
    green = await post(mapi, "al-cert", "t-green")
    found = await mail_server.wait_for(2 + 3)
    mails = found[2:]
    by_sub = {sub_id: [m for m in mails if sub_id in m.part("plain")] for sub_id in [amber_sub]}
    assert [hub_ids(m) for m in by_sub[amber_sub]] == [[amber], [green]]
    others = [m for m in mails if amber_sub not in m.part("plain")]
    assert [hub_ids(m) for m in others] == [[green]]
    amber_mail = by_sub[amber_sub][0]
    assert amber_mail.message["Subject"].startswith("[TLP:AMBER] ")
    assert amber_mail.part("plain").splitlines()[0] == "TLP:AMBER"
    assert "TLP:AMBER" in amber_mail.part("html").split("</p>", 1)[0]


async def test_a_4xx_is_tried_again(mapi: Api, mail_server: MailServer) -> None:
    """An SMTP 4xx for an alert's message is retried on the schedule and then delivered."""
    sub = await subscribe_by_mail(mapi, mail_server)
    mail_server.answers = ["451 4.3.0 Mailbox busy, try later"]
    hub_id = await post(mapi, "al-cert", "t-1")
    (_, delivered) = await mail_server.wait_for(2)
    assert hub_ids(delivered) == [hub_id]
    assert mail_server.rcpt_attempts == [DESK, DESK, DESK]
    _, letters = await mapi.get("rs-cert", f"/v1/subscriptions/{sub}/dead-letters")
    assert letters["dead_letters"] == []
    _, current = await mapi.get("rs-cert", f"/v1/subscriptions/{sub}")
    assert current["status"] == "active"


async def test_a_5xx_dead_letters_and_pauses(mapi: Api, mail_server: MailServer) -> None:
    """An SMTP 5xx makes the event a dead letter at once and pauses the subscription, with the
    relay's answer as the reason; nothing more is sent to the address."""
    sub = await subscribe_by_mail(mapi, mail_server)
    mail_server.answers = ["550 5.1.1 No such mailbox"]
    hub_id = await post(mapi, "al-cert", "t-1")
    path = f"/v1/subscriptions/{sub}"
    current = await wait_status(mapi, "rs-cert", sub, "paused")
    assert "550" in current["status_reason"]
    _, letters = await mapi.get("rs-cert", f"{path}/dead-letters")
    (letter,) = letters["dead_letters"]
    assert letter["hub_id"] == hub_id and letter["last_status"] == 550
    assert len(mail_server.messages()) == 1  # the confirmation only


async def test_headers_are_safe_from_line_breaks_in_alert_text(
    mapi: Api, mail_server: MailServer
) -> None:
    """A title with Unicode line breaks (NEL, LINE SEPARATOR) that the schema lets through
    becomes one Subject line: no header is added and no one else receives the message."""
    await subscribe_by_mail(mapi, mail_server)
    title = "Phish\u2028Bcc: victim@example.org\u0085X-Injected: yes\u2029end"
    hub_id = await post(mapi, "al-cert", "t-1", title=title)
    (_, got) = await mail_server.wait_for(2)
    assert got.rcpt_tos == [DESK] and hub_ids(got) == [hub_id]
    message = got.message
    assert message["Bcc"] is None and message["X-Injected"] is None
    assert (
        message["Subject"] == "[TLP:GREEN] New alert: Phish Bcc: victim@example.org "
        "X-Injected: yes end"
    )
    head = got.data.split(b"\r\n\r\n", 1)[0]
    assert not re.search(rb"^(Bcc|X-Injected):", head, re.M | re.I)


def test_header_injection_with_cr_lf_is_impossible() -> None:
    """Even a CR/LF (which the schema refuses before it gets here) cannot start a header."""
    envelope = Envelope("hub <hub@a.example>", DESK, "S", "https://h/u", "https://h/a/")
    title = "x\r\nBcc: victim@example.org\r\n\r\nbody"
    event = {"id": "1-0", "type": "alert.created", "hub_id": "H",
             "alert": {"tlp": "GREEN", "title": title}}  # fmt: skip
    data = event_message(envelope, event).as_bytes()
    head = data.split(b"\r\n\r\n", 1)[0]
    assert b"\nBcc:" not in head and b"Subject: [TLP:GREEN] New alert: x Bcc:" in head


async def test_the_html_part_escapes_alert_text(mapi: Api, mail_server: MailServer) -> None:
    """Markup in an alert's text is shown as text in the HTML part, never as markup."""
    await subscribe_by_mail(mapi, mail_server)
    summary = '<script>alert(1)</script><img src=x onerror="steal()"> & <b>bold</b>'
    await post(mapi, "al-cert", "t-1", summary=summary)
    (_, got) = await mail_server.wait_for(2)
    html = got.part("html")
    assert "<script>" not in html and "<img" not in html and "<b>bold" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert summary in got.part("plain")
    assert "t-1[.]phish[.]example" in got.part("plain")  # indicators defanged


async def test_unsubscribe_by_one_click_and_by_link(mapi: Api, mail_server: MailServer) -> None:
    """Every alert message carries List-Unsubscribe (one-click, RFC 8058) and a link in its
    body; the one-click POST pauses the subscription at once, opening the link does not, and
    resuming asks the address to confirm again."""
    sub = await subscribe_by_mail(mapi, mail_server)
    await post(mapi, "al-cert", "t-1")
    (_, got) = await mail_server.wait_for(2)
    message = got.message
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = message["List-Unsubscribe"].strip("<>")
    assert url in got.part("plain")
    path = "/" + url.split("://", 1)[1].split("/", 1)[1]
    assert (await mapi.client.get(path)).status == 200
    assert (await mapi.get("rs-cert", f"/v1/subscriptions/{sub}"))[1]["status"] == "active"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    resp = await mapi.client.post(path, data="List-Unsubscribe=One-Click", headers=form)
    assert resp.status == 200
    _, current = await mapi.get("rs-cert", f"/v1/subscriptions/{sub}")
    assert current["status"] == "paused" and "unsubscribed" in current["status_reason"]
    resp = await mapi.client.patch(f"/v1/subscriptions/{sub}", json={"status": "active"},
                                   headers=mapi.auth("rs-cert"))  # fmt: skip
    assert (await resp.json())["status"] == "pending"
    (*_, again) = await mail_server.wait_for(3)
    assert again.message["Subject"] == "alerthub: confirm your subscription"


async def test_credentials_come_from_a_file(
    aiohttp_client: Any, delivery_settings: Settings, schema_set: SchemaSet, tmp_path: Path
) -> None:
    """A relay that requires AUTH (over STARTTLS) gets the user from the URL and the password
    from ALERTHUB_SMTP_PASSWORD_FILE."""
    server = MailServer(tmp_path, login=("hub", "s3cret pass")).start()
    try:
        secret = tmp_path / "smtp-password"
        secret.write_text("s3cret pass\n")
        settings = dataclasses.replace(
            delivery_settings,
            smtp_url=server.url("hub@"),
            smtp_ca_file=server.ca_file,
            smtp_password_file=secret,
        )
        api = Api(await aiohttp_client(create_app(settings, schema_set)))
        await api.add_node("rs-cert", "RS")
        await subscribe_by_mail(api, server)
    finally:
        server.stop()


async def test_email_needs_a_relay(api: Api) -> None:
    """A hub with no ALERTHUB_SMTP_URL refuses e-mail subscriptions with a 422 that says so."""
    await api.add_node("rs-cert", "RS")
    resp = await api.client.post(
        "/v1/subscriptions",
        json={"delivery": {"type": "email", "to": DESK}},
        headers=api.auth("rs-cert"),
    )
    body = await resp.json()
    assert resp.status == 422 and body["details"][0]["pointer"] == "/delivery/type"


async def test_only_the_owner_opts_in_to_amber(mapi: Api, mail_server: MailServer) -> None:
    """An operator may pause an e-mail subscription but not raise its TLP limit or change its
    rhythm (403); the owner may; neither applies to a pull subscription (409)."""
    sub = await subscribe_by_mail(mapi, mail_server, confirm=False)
    path = f"/v1/subscriptions/{sub}"
    resp = await mapi.client.patch(path, json={"max_tlp": "AMBER"}, headers=mapi.auth("operator"))
    assert resp.status == 403
    resp = await mapi.client.patch(
        path, json={"max_tlp": "AMBER", "digest": "daily"}, headers=mapi.auth("rs-cert")
    )
    assert resp.status == 200
    delivery = (await resp.json())["delivery"]
    assert (delivery["max_tlp"], delivery["digest"]) == ("AMBER", "daily")
    pull = (await mapi.subscribe("rs-cert"))["id"]
    resp = await mapi.client.patch(
        f"/v1/subscriptions/{pull}", json={"digest": "daily"}, headers=mapi.auth("rs-cert")
    )
    assert resp.status == 409


def test_the_relay_password_is_not_shown() -> None:
    """Settings read from the environment keep the relay's password out of their repr."""
    settings = Settings.from_env({"ALERTHUB_SMTP_URL": "smtp://hub:s3cret@relay.example:587"})
    assert "s3cret" not in repr(settings) and "relay.example" in repr(settings)
    with pytest.raises(ValueError, match="tls=off"):
        Settings.from_env({"ALERTHUB_SMTP_URL": "smtp://relay.example:25?tls=off"})
