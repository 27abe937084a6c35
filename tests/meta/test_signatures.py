"""Webhook signatures over raw bytes, signed_request, appsecret_proof."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.meta.signatures import (
    SignedRequestError,
    appsecret_proof,
    make_signed_request,
    meta_json_bytes,
    parse_signed_request,
    sign_hub_body,
    verify_hub_signature,
)
from tests.meta.conftest import APP_SECRET, HYPOTHESIS_EXAMPLES, IG_APP_SECRET, load_fixture_bytes

ESCAPED = load_fixture_bytes("message_text_meta_escaped.json")


def test_signature_over_meta_escaped_bytes_verifies() -> None:
    assert b"\\u00e1" in ESCAPED
    assert b"\\/" in ESCAPED
    header = sign_hub_body(ESCAPED, APP_SECRET)
    assert verify_hub_signature(ESCAPED, header, [APP_SECRET])


def test_signature_over_reserialised_json_does_not_verify() -> None:
    reserialised = json.dumps(json.loads(ESCAPED)).encode("utf-8")
    assert reserialised != ESCAPED
    # A signature computed over the re-serialised body does not match the wire bytes...
    assert not verify_hub_signature(ESCAPED, sign_hub_body(reserialised, APP_SECRET), [APP_SECRET])
    # ...and the real signature does not match re-serialised bytes.
    assert not verify_hub_signature(reserialised, sign_hub_body(ESCAPED, APP_SECRET), [APP_SECRET])


def test_signature_matches_a_plain_hmac() -> None:
    digest = hmac.new(APP_SECRET.encode(), ESCAPED, hashlib.sha256).hexdigest()
    assert sign_hub_body(ESCAPED, APP_SECRET) == f"sha256={digest}"


def test_any_configured_secret_is_accepted() -> None:
    header = sign_hub_body(ESCAPED, IG_APP_SECRET)
    assert verify_hub_signature(ESCAPED, header, [APP_SECRET, IG_APP_SECRET])
    assert not verify_hub_signature(ESCAPED, header, [APP_SECRET])


def test_uppercase_hex_is_accepted_and_whitespace_ignored() -> None:
    digest = sign_hub_body(ESCAPED, APP_SECRET).removeprefix("sha256=")
    assert verify_hub_signature(ESCAPED, "sha256=" + digest.upper(), [APP_SECRET])
    assert verify_hub_signature(ESCAPED, f"  sha256={digest}\n", [APP_SECRET])


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        "sha1=" + "0" * 40,
        "SHA256=" + "0" * 64,
        "0" * 64,
        "sha256=" + "g" * 64,
        "sha256=" + "0" * 63,
        "sha256=" + "0" * 65,
    ],
)
def test_malformed_headers_are_refused(header: str | None) -> None:
    assert not verify_hub_signature(ESCAPED, header, [APP_SECRET])


def test_wrong_prefix_case_is_refused_even_with_right_digest() -> None:
    digest = sign_hub_body(ESCAPED, APP_SECRET).removeprefix("sha256=")
    assert not verify_hub_signature(ESCAPED, "SHA256=" + digest, [APP_SECRET])
    assert not verify_hub_signature(ESCAPED, "sha1=" + digest, [APP_SECRET])


def test_no_secrets_or_empty_secret_never_verifies() -> None:
    assert not verify_hub_signature(ESCAPED, sign_hub_body(ESCAPED, ""), [])
    assert not verify_hub_signature(ESCAPED, sign_hub_body(ESCAPED, ""), [""])


def test_meta_json_bytes_escapes_like_meta() -> None:
    raw = meta_json_bytes({"text": "Olá https://x.y/z \U0001f600"})
    assert raw == b'{"text":"Ol\\u00e1 https:\\/\\/x.y\\/z \\ud83d\\ude00"}'
    assert json.loads(raw) == {"text": "Olá https://x.y/z \U0001f600"}


@settings(max_examples=HYPOTHESIS_EXAMPLES, deadline=None)
@given(
    body=st.binary(min_size=1, max_size=300),
    secret=st.text(min_size=1, max_size=20),
    position=st.integers(min_value=0),
    bit=st.integers(min_value=0, max_value=7),
)
def test_signature_roundtrip_and_bit_flip(
    body: bytes, secret: str, position: int, bit: int
) -> None:
    header = sign_hub_body(body, secret)
    assert verify_hub_signature(body, header, [secret])
    flipped = bytearray(body)
    flipped[position % len(body)] ^= 1 << bit
    assert not verify_hub_signature(bytes(flipped), header, [secret])


def test_appsecret_proof_is_lowercase_hex_hmac_of_token() -> None:
    expected = hmac.new(b"secret", b"token", hashlib.sha256).hexdigest()
    assert appsecret_proof("token", "secret") == expected


# --- signed_request --------------------------------------------------------------------------

PAYLOAD = {"issued_at": 1718000000, "user_id": "10223000000000000", "expires": 0}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_signed_request_roundtrip() -> None:
    signed = make_signed_request(PAYLOAD, APP_SECRET)
    assert "=" not in signed
    data = parse_signed_request(signed, APP_SECRET)
    assert data["user_id"] == "10223000000000000"
    assert data["algorithm"] == "HMAC-SHA256"


def test_signed_request_built_by_hand_like_meta() -> None:
    payload = _b64(json.dumps({"algorithm": "HMAC-SHA256", "user_id": "42"}).encode())
    sig = _b64(hmac.new(APP_SECRET.encode(), payload.encode(), hashlib.sha256).digest())
    assert parse_signed_request(f"{sig}.{payload}", APP_SECRET)["user_id"] == "42"


def test_signed_request_accepts_either_secret() -> None:
    signed = make_signed_request(PAYLOAD, IG_APP_SECRET)
    assert parse_signed_request(signed, [APP_SECRET, IG_APP_SECRET])["user_id"]


def test_signed_request_tampered_payload_is_refused() -> None:
    sig, _ = make_signed_request(PAYLOAD, APP_SECRET).split(".")
    forged = _b64(json.dumps({"algorithm": "HMAC-SHA256", "user_id": "666"}).encode())
    with pytest.raises(SignedRequestError) as info:
        parse_signed_request(f"{sig}.{forged}", APP_SECRET)
    assert info.value.reason == "bad_signature"


def test_signed_request_tampered_signature_is_refused() -> None:
    sig, payload = make_signed_request(PAYLOAD, APP_SECRET).split(".")
    bad_sig = _b64(bytes(b ^ 1 for b in base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))))
    with pytest.raises(SignedRequestError) as info:
        parse_signed_request(f"{bad_sig}.{payload}", APP_SECRET)
    assert info.value.reason == "bad_signature"


def test_signed_request_wrong_secret_is_refused() -> None:
    with pytest.raises(SignedRequestError):
        parse_signed_request(make_signed_request(PAYLOAD, "other"), APP_SECRET)


@pytest.mark.parametrize("algorithm", ["HMAC-SHA1", "none", "", None, 5])
def test_signed_request_wrong_algorithm_is_refused(algorithm: object) -> None:
    payload = _b64(json.dumps({"algorithm": algorithm, "user_id": "1"}).encode())
    sig = _b64(hmac.new(APP_SECRET.encode(), payload.encode(), hashlib.sha256).digest())
    with pytest.raises(SignedRequestError) as info:
        parse_signed_request(f"{sig}.{payload}", APP_SECRET)
    assert info.value.reason == "unsupported_algorithm"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "malformed"),
        ("nodot", "malformed"),
        (".abc", "malformed"),
        ("abc.", "malformed"),
        ("a.b.c", "malformed"),
        ("!!!!.abcd", "bad_encoding"),
        ("abcd.a", "bad_encoding"),
        (f"abcd.{_b64(b'not json')}", "bad_payload"),
        (f"abcd.{_b64(b'[1, 2]')}", "bad_payload"),
    ],
)
def test_signed_request_malformed_inputs(value: str, reason: str) -> None:
    with pytest.raises(SignedRequestError) as info:
        parse_signed_request(value, APP_SECRET)
    assert info.value.reason == reason


def test_signed_request_without_secret_is_refused() -> None:
    with pytest.raises(SignedRequestError) as info:
        parse_signed_request(make_signed_request(PAYLOAD, APP_SECRET), [])
    assert info.value.reason == "no_secret"


@settings(max_examples=HYPOTHESIS_EXAMPLES, deadline=None)
@given(st.text(max_size=200))
def test_signed_request_only_raises_its_declared_error(value: str) -> None:
    with contextlib.suppress(SignedRequestError):
        parse_signed_request(value, APP_SECRET)
