"""Standard Webhooks signatures (https://www.standardwebhooks.com), so that a subscriber can check
with any of that specification's libraries that a delivery came from this hub, unchanged and
recently: HMAC-SHA256 over "<webhook-id>.<webhook-timestamp>.<body>", keyed with the subscription's
secret and sent as "v1,<base64>" in the webhook-signature header.

The signature and its check live once, in the partners' client (alerthub_client.webhooks), so
the hub cannot sign in a way its own client refuses; this module adds what only the hub needs."""

from __future__ import annotations

import base64
import secrets

from alerthub_client.webhooks import SECRET_PREFIX
from alerthub_client.webhooks import WebhookError as SignatureError
from alerthub_client.webhooks import secret_key as secret_bytes
from alerthub_client.webhooks import sign_webhook as sign
from alerthub_client.webhooks import verify_signature as verify

__all__ = [
    "SECRET_PREFIX",
    "SignatureError",
    "new_secret",
    "secret_bytes",
    "sign",
    "verify",
    "webhook_headers",
]


def new_secret() -> str:
    """A fresh subscription secret: 24 random bytes, base64, behind the spec's "whsec_" prefix."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def webhook_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one delivery of `body`, a JSON document, signed with `secret`."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
        "content-type": "application/json",
    }
