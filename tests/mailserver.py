"""A real SMTP server (aiosmtpd) on a loopback port for the e-mail tests: STARTTLS with a
certificate from a throwaway CA (trustme), optional AUTH, scripted answers to RCPT, and every
message kept as received."""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from hub.store.embedded import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)  # type: ignore[return-value]

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None, f"no text/{subtype} part"
        return body.get_content()


@dataclass
class _Handler:
    server: MailServer

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:  # fmt: skip
        with self.server.lock:
            self.server.rcpt_attempts.append(address)
            answer = self.server.answers.pop(0) if self.server.answers else "250 OK"
        if answer.startswith("250"):
            envelope.rcpt_tos.append(address)
        return answer

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.server.lock:
            self.server.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content))
            )
        return "250 Message accepted for delivery"


@dataclass
class MailServer:
    """`answers` are the replies to the next RCPT commands (then "250 OK")."""

    folder: Path
    answers: list[str] = field(default_factory=list)
    login: tuple[str, str] | None = None
    received: list[Received] = field(default_factory=list)
    rcpt_attempts: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _controller: Controller | None = None

    @property
    def ca_file(self) -> Path:
        return self.folder / "smtp-ca.pem"

    def url(self, credentials: str = "") -> str:
        return f"smtp://{credentials}127.0.0.1:{self.port}"

    def start(self) -> MailServer:
        ca = trustme.CA()
        ca.cert_pem.write_to_path(str(self.ca_file))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        options: dict[str, Any] = {}
        if self.login is not None:
            options.update(authenticator=self._authenticate, auth_require_tls=True)
        self._controller = Controller(
            _Handler(self),
            hostname="127.0.0.1",
            port=self.port,
            tls_context=context,
            require_starttls=True,
            **options,
        )
        self._controller.start()
        return self

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                      auth_data: Any) -> AuthResult:  # fmt: skip
        ok = isinstance(auth_data, LoginPassword) and self.login == (
            auth_data.login.decode(),
            auth_data.password.decode(),
        )
        return AuthResult(success=ok)

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()

    def messages(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    async def wait_for(self, count: int, within: float = 15.0) -> list[Received]:
        """The messages once there are at least `count` (AssertionError at the deadline)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while len(found := self.messages()) < count:
            assert loop.time() < deadline, f"{len(found)} of {count} messages arrived: {found}"
            await asyncio.sleep(0.02)
        return found
