"""Listing cursors, sealed: a `next` may stand on an alert the caller may not see, and must not
show its id (a ULID tells that the alert exists and when it came). Encrypted with an HMAC-SHA256
key stream and authenticated with an HMAC tag, under a key all hub processes share."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

_NONCE_BYTES = 8
_TAG_BYTES = 10


def _keystream(key: bytes, nonce: bytes, length: int) -> bytes:
    blocks = []
    counter = 0
    while sum(map(len, blocks)) < length:
        blocks.append(hmac.new(key, b"ks" + nonce + bytes([counter]), hashlib.sha256).digest())
        counter += 1
    return b"".join(blocks)[:length]


def _tag(key: bytes, nonce: bytes, body: bytes) -> bytes:
    return hmac.new(key, b"tag" + nonce + body, hashlib.sha256).digest()[:_TAG_BYTES]


def seal(key: bytes, position: str) -> str:
    """An opaque, URL-safe cursor for `position` (ASCII, at most 255 bytes)."""
    nonce = secrets.token_bytes(_NONCE_BYTES)
    data = position.encode("ascii")
    body = bytes(a ^ b for a, b in zip(data, _keystream(key, nonce, len(data)), strict=True))
    raw = nonce + body + _tag(key, nonce, body)
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def unseal(key: bytes, cursor: str) -> str | None:
    """The position sealed in `cursor`, or None when it is not one of ours or was altered."""
    if not cursor.isascii() or len(cursor) > 512:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) <= _NONCE_BYTES + _TAG_BYTES:
        return None
    nonce, body, tag = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:-_TAG_BYTES], raw[-_TAG_BYTES:]
    if not hmac.compare_digest(tag, _tag(key, nonce, body)):
        return None
    data = bytes(a ^ b for a, b in zip(body, _keystream(key, nonce, len(body)), strict=True))
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        return None
