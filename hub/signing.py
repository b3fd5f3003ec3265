"""Standard Webhooks signatures (https://www.standardwebhooks.com), so that a subscriber can check
with any of that specification's libraries that a delivery came from this hub, unchanged and
recently: HMAC-SHA256 over "<webhook-id>.<webhook-timestamp>.<body>", keyed with the subscription's
secret and sent as "v1,<base64>" in the webhook-signature header."""

from __future__ import annotations

import base64
import hmac
import re
import secrets
import time
from collections.abc import Mapping

SECRET_PREFIX = "whsec_"
# Whole seconds only; the bound keeps int() clear of Python's limit on long digit strings.
_TIMESTAMP = re.compile(r"[0-9]{1,18}")


class SignatureError(ValueError):
    """A secret or a delivery that cannot be trusted; its str says why."""


def new_secret() -> str:
    """A fresh subscription secret: 24 random bytes, base64, behind the spec's "whsec_" prefix."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def secret_bytes(secret: str) -> bytes:
    """The HMAC key a secret stands for; the "whsec_" prefix is optional."""
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except ValueError as e:  # binascii.Error, or a non-ASCII str
        raise SignatureError("the webhook secret is not valid base64") from e
    if not key:
        # Anyone could sign with an empty key.
        raise SignatureError("the webhook secret is empty")
    return key


def _signature(key: bytes, msg_id: str, timestamp: str, body: bytes) -> bytes:
    digest = hmac.digest(key, f"{msg_id}.{timestamp}.".encode() + body, "sha256")
    return base64.b64encode(digest)


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature header value: "v1," and the base64 HMAC-SHA256 of the message."""
    return "v1," + _signature(secret_bytes(secret), msg_id, str(timestamp), body).decode("ascii")


def webhook_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one delivery of `body`, a JSON document, signed with `secret`."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
        "content-type": "application/json",
    }


def _header(headers: Mapping[str, str], name: str) -> str:
    """`name` (lower case) looked up whatever the case of the keys, for plain dicts too."""
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    if not value:
        raise SignatureError(f"the {name} header is missing or empty")
    return value


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance_s: int = 300,
) -> None:
    """Return when one "v1" entry of the webhook-signature header signs this id, timestamp and
    body with `secret` and the timestamp is within `tolerance_s` of `now`; raise SignatureError
    otherwise. Several entries are how a sender rotates keys; other versions are ignored."""
    key = secret_bytes(secret)
    msg_id = _header(headers, "webhook-id")
    timestamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise SignatureError("the webhook-timestamp header is not a Unix time in whole seconds")
    age = (time.time() if now is None else now) - int(timestamp)
    if age > tolerance_s:
        raise SignatureError(
            f"the webhook-timestamp is {age:.0f} s old, more than the {tolerance_s} s allowed"
        )
    if age < -tolerance_s:
        raise SignatureError(
            f"the webhook-timestamp is {-age:.0f} s in the future, "
            f"more than the {tolerance_s} s allowed"
        )
    # The timestamp as sent, not re-formatted: the sender signed its own text.
    expected = _signature(key, msg_id, timestamp, body)
    for entry in signatures.split():
        version, comma, candidate = entry.partition(",")
        if version == "v1" and comma and hmac.compare_digest(candidate.encode(), expected):
            return
    raise SignatureError("no v1 signature in the webhook-signature header matches the message")
