"""Deliveries are signed as Standard Webhooks specifies, and verification refuses every forgery."""

from __future__ import annotations

import base64
import time

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from hub.delivery.signing import (
    SignatureError,
    new_secret,
    secret_bytes,
    sign,
    verify,
    webhook_headers,
)

# The test vector published with the Standard Webhooks specification's reference libraries.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

SECRET = new_secret()
OTHER_SECRET = new_secret()
NOW = 1_700_000_000
BODY = b'{"alert":"a1","severity":"high"}'


def headers_for(secret: str = SECRET, msg_id: str = "msg_1", ts: int = NOW) -> dict[str, str]:
    return webhook_headers(secret, msg_id, ts, BODY)


def test_sign_matches_the_spec_test_vector() -> None:
    """sign() reproduces the signature published with the Standard Webhooks specification."""
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_verify_accepts_the_spec_test_vector() -> None:
    """verify() accepts the specification's published delivery, with or without the prefix."""
    headers = {
        "webhook-id": SPEC_ID,
        "webhook-timestamp": str(SPEC_TIMESTAMP),
        "webhook-signature": SPEC_SIGNATURE,
    }
    verify(SPEC_SECRET, headers, SPEC_BODY, now=SPEC_TIMESTAMP)
    verify(SPEC_SECRET.removeprefix("whsec_"), headers, SPEC_BODY, now=SPEC_TIMESTAMP)


def test_new_secret_is_24_random_bytes_behind_the_prefix() -> None:
    """A new secret is "whsec_" and 24 bytes of standard base64, different every time."""
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(secret_bytes(secret)) == 24
    assert base64.b64encode(secret_bytes(secret)).decode() == secret.removeprefix("whsec_")
    assert len({new_secret() for _ in range(100)}) == 100


def test_webhook_headers_carry_id_timestamp_signature_and_type() -> None:
    """The delivery headers hold the id, the timestamp as text, the signature and JSON's type."""
    headers = webhook_headers(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)
    assert headers == {
        "webhook-id": SPEC_ID,
        "webhook-timestamp": "1614265330",
        "webhook-signature": SPEC_SIGNATURE,
        "content-type": "application/json",
    }


def test_round_trip() -> None:
    """A delivery signed by webhook_headers() verifies with the same secret."""
    verify(SECRET, headers_for(), BODY, now=NOW)


def test_tampered_body_is_refused() -> None:
    """A body changed after signing is refused."""
    with pytest.raises(SignatureError, match="no v1 signature"):
        verify(SECRET, headers_for(), BODY.replace(b"high", b"low"), now=NOW)


def test_tampered_id_or_timestamp_is_refused() -> None:
    """The id and timestamp are signed too: changing either one is refused."""
    headers = headers_for()
    with pytest.raises(SignatureError, match="no v1 signature"):
        verify(SECRET, {**headers, "webhook-id": "msg_2"}, BODY, now=NOW)
    with pytest.raises(SignatureError, match="no v1 signature"):
        verify(SECRET, {**headers, "webhook-timestamp": str(NOW + 1)}, BODY, now=NOW)


def test_wrong_secret_is_refused() -> None:
    """A delivery signed with another secret is refused."""
    with pytest.raises(SignatureError, match="no v1 signature"):
        verify(OTHER_SECRET, headers_for(), BODY, now=NOW)


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_timestamp_within_tolerance_is_accepted(offset: int) -> None:
    """A timestamp up to the tolerance away from now, either side, is accepted."""
    verify(SECRET, headers_for(ts=NOW + offset), BODY, now=NOW)


def test_stale_timestamp_is_refused() -> None:
    """A delivery older than the tolerance is refused, even when correctly signed (replay)."""
    with pytest.raises(SignatureError, match="301 s old"):
        verify(SECRET, headers_for(ts=NOW - 301), BODY, now=NOW)


def test_future_timestamp_is_refused() -> None:
    """A delivery dated further ahead than the tolerance is refused."""
    with pytest.raises(SignatureError, match="in the future"):
        verify(SECRET, headers_for(ts=NOW + 301), BODY, now=NOW)


def test_tolerance_is_configurable() -> None:
    """tolerance_s widens or narrows the accepted window."""
    verify(SECRET, headers_for(ts=NOW - 1000), BODY, now=NOW, tolerance_s=1000)
    with pytest.raises(SignatureError, match="old"):
        verify(SECRET, headers_for(ts=NOW - 10), BODY, now=NOW, tolerance_s=5)


def test_without_now_the_clock_is_used() -> None:
    """Without `now`, the timestamp is checked against the real clock."""
    verify(SECRET, headers_for(ts=int(time.time())), BODY)
    with pytest.raises(SignatureError, match="old"):
        verify(SECRET, headers_for(ts=NOW), BODY)


def test_any_one_of_several_signatures_suffices() -> None:
    """During key rotation the header holds several entries; one matching is enough."""
    good = headers_for()["webhook-signature"]
    stale = headers_for(OTHER_SECRET)["webhook-signature"]
    for value in (f"{stale} {good}", f"{good} {stale}", f"  {stale}   {good} "):
        verify(SECRET, {**headers_for(), "webhook-signature": value}, BODY, now=NOW)


def test_entries_of_other_versions_are_ignored() -> None:
    """Only "v1," entries count: the right digest under another version label does not verify."""
    digest = headers_for()["webhook-signature"].removeprefix("v1,")
    for value in (f"v1a,{digest}", f"v2,{digest}", f"V1,{digest}", f"v1{digest}", digest):
        with pytest.raises(SignatureError, match="no v1 signature"):
            verify(SECRET, {**headers_for(), "webhook-signature": value}, BODY, now=NOW)
    mixed = f"v1a,{digest} v2,whatever v1,{digest}"
    verify(SECRET, {**headers_for(), "webhook-signature": mixed}, BODY, now=NOW)


def test_non_ascii_signature_is_refused_not_crashed() -> None:
    """A signature entry with non-ASCII characters is a SignatureError, not a TypeError."""
    with pytest.raises(SignatureError, match="no v1 signature"):
        verify(SECRET, {**headers_for(), "webhook-signature": "v1,é"}, BODY, now=NOW)


@pytest.mark.parametrize("bad", ["whsec_not base64!", "whsec_abc", "whsec_é", "@@@@"])
def test_secret_that_is_not_base64_is_refused(bad: str) -> None:
    """A secret that is not standard base64 raises SignatureError (a ValueError)."""
    with pytest.raises(SignatureError, match="not valid base64"):
        secret_bytes(bad)
    with pytest.raises(ValueError):
        sign(bad, "msg_1", NOW, BODY)


@pytest.mark.parametrize("empty", ["", "whsec_"])
def test_empty_secret_is_refused(empty: str) -> None:
    """An empty key would let anyone sign, so it is refused."""
    with pytest.raises(SignatureError, match="empty"):
        secret_bytes(empty)


def test_header_names_are_case_insensitive() -> None:
    """Headers are found whatever their case, in a plain dict or in aiohttp's CIMultiDictProxy."""
    titled = {k.title(): v for k, v in headers_for().items()}
    verify(SECRET, titled, BODY, now=NOW)
    upper = {k.upper(): v for k, v in headers_for().items()}
    verify(SECRET, upper, BODY, now=NOW)
    verify(SECRET, CIMultiDictProxy(CIMultiDict(titled)), BODY, now=NOW)


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_or_empty_header_is_refused(name: str) -> None:
    """A delivery without one of the three headers, or with it empty, is refused by name."""
    headers = headers_for()
    without = {k: v for k, v in headers.items() if k != name}
    with pytest.raises(SignatureError, match=f"the {name} header is missing"):
        verify(SECRET, without, BODY, now=NOW)
    with pytest.raises(SignatureError, match=f"the {name} header is missing"):
        verify(SECRET, {**headers, name: ""}, BODY, now=NOW)


@pytest.mark.parametrize("ts", ["soon", "1.5e9", "1700000000.0", " 1700000000", "+1700000000",
                                "1_700_000_000", "-1", "9" * 5000])  # fmt: skip
def test_non_integer_timestamp_is_refused(ts: str) -> None:
    """A timestamp that is not plain decimal digits is refused before any arithmetic."""
    headers = {**headers_for(), "webhook-timestamp": ts}
    with pytest.raises(SignatureError, match="not a Unix time"):
        verify(SECRET, headers, BODY, now=NOW)
