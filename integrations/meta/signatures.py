"""Webhook signatures, ``signed_request`` callbacks and ``appsecret_proof``.

Webhook signature rules (``X-Hub-Signature-256``):

- The HMAC-SHA256 is computed over the RAW request bytes exactly as received. Meta escapes
  non-ASCII as ``\\uXXXX`` and may escape ``/`` as ``\\/``; re-serialising parsed JSON changes
  the bytes and breaks verification.
- Only the ``sha256=`` prefix (lowercase, as Meta sends it) is accepted; ``sha1=`` and bare
  digests are refused.
- The hex digest is compared case-insensitively: Meta sends lowercase, but hex case carries no
  information, so an uppercase digest of the right bytes is the same signature and accepted.
  Anything that is not exactly 64 hex characters is refused.
- Several secrets may be configured (Meta app secret and Instagram app secret, or a secret
  being rotated); each is tried with ``hmac.compare_digest``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import string
from collections.abc import Iterable, Mapping
from typing import Any

SIGNATURE_HEADER = "X-Hub-Signature-256"
SIGNATURE_PREFIX = "sha256="
SIGNED_REQUEST_ALGORITHM = "HMAC-SHA256"

_HEX_DIGITS = frozenset(string.hexdigits)


def _hmac_sha256(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()


def sign_hub_body(raw_body: bytes, secret: str) -> str:
    """The ``X-Hub-Signature-256`` header value Meta would send for these bytes."""
    return SIGNATURE_PREFIX + _hmac_sha256(secret, raw_body).hex()


def verify_hub_signature(raw_body: bytes, header: str | None, secrets: Iterable[str]) -> bool:
    """True when ``header`` is a valid ``sha256=`` signature of ``raw_body`` under any secret."""
    if not header or not isinstance(raw_body, bytes | bytearray):
        return False
    value = header.strip()
    if not value.startswith(SIGNATURE_PREFIX):
        return False
    received = value[len(SIGNATURE_PREFIX) :]
    if len(received) != 64 or not all(ch in _HEX_DIGITS for ch in received):
        return False
    received_bytes = received.lower().encode("ascii")
    matched = False
    for secret in secrets:
        if not secret:
            continue
        expected = _hmac_sha256(secret, bytes(raw_body)).hex().encode("ascii")
        # Every secret is checked so the time taken does not depend on which one matched.
        matched |= hmac.compare_digest(received_bytes, expected)
    return matched


def meta_json_bytes(payload: Any) -> bytes:
    """Serialise like Meta's webhook sender: ASCII only (``\\uXXXX``), ``/`` escaped as ``\\/``.

    Useful for the simulator and for tests that must sign realistic wire bytes.
    """
    text = json.dumps(payload, ensure_ascii=True, separators=(",", ":"))
    return text.replace("/", "\\/").encode("ascii")


def appsecret_proof(access_token: str, app_secret: str) -> str:
    """Lowercase hex HMAC-SHA256 of the access token keyed by the app secret."""
    return hmac.new(
        app_secret.encode("utf-8"), access_token.encode("utf-8"), hashlib.sha256
    ).hexdigest()


class SignedRequestError(ValueError):
    """A ``signed_request`` could not be trusted; ``reason`` is a stable string.

    Reasons: ``malformed``, ``bad_encoding``, ``bad_payload``, ``unsupported_algorithm``,
    ``bad_signature``, ``no_secret``.
    """

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason


def _b64url_decode(segment: str) -> bytes:
    if not segment or len(segment) % 4 == 1:
        raise SignedRequestError("bad_encoding", "invalid base64url segment")
    padded = segment + "=" * (-len(segment) % 4)
    try:
        return base64.b64decode(padded.translate(str.maketrans("-_", "+/")), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignedRequestError("bad_encoding", "invalid base64url segment") from exc


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def parse_signed_request(signed_request: str, app_secret: str | Iterable[str]) -> dict[str, Any]:
    """Verify and decode Meta's ``signed_request`` (data deletion and deauthorize callbacks).

    ``app_secret`` may be one secret or several (Meta app secret and Instagram app secret).
    Returns the payload dict; raises ``SignedRequestError`` on any problem.
    """
    secrets = [app_secret] if isinstance(app_secret, str) else list(app_secret)
    secrets = [s for s in secrets if s]
    if not secrets:
        raise SignedRequestError("no_secret", "no app secret configured")
    if not isinstance(signed_request, str) or signed_request.count(".") < 1:
        raise SignedRequestError("malformed", "expected '<signature>.<payload>'")
    encoded_sig, encoded_payload = signed_request.strip().split(".", 1)
    if not encoded_sig or not encoded_payload or "." in encoded_payload:
        raise SignedRequestError("malformed", "expected '<signature>.<payload>'")
    try:
        encoded_payload_bytes = encoded_payload.encode("ascii")
    except UnicodeEncodeError as exc:
        raise SignedRequestError("bad_encoding", "non-ASCII payload") from exc
    signature = _b64url_decode(encoded_sig)
    payload_bytes = _b64url_decode(encoded_payload)
    try:
        payload = json.loads(payload_bytes)
    except (ValueError, RecursionError) as exc:
        raise SignedRequestError("bad_payload", "payload is not JSON") from exc
    if not isinstance(payload, dict):
        raise SignedRequestError("bad_payload", "payload is not a JSON object")
    algorithm = payload.get("algorithm")
    if not isinstance(algorithm, str) or algorithm.upper() != SIGNED_REQUEST_ALGORITHM:
        raise SignedRequestError("unsupported_algorithm", "algorithm must be HMAC-SHA256")
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(signature, _hmac_sha256(secret, encoded_payload_bytes))
    if not matched:
        raise SignedRequestError("bad_signature", "signature does not match")
    return payload


def make_signed_request(payload: Mapping[str, Any], app_secret: str) -> str:
    """Build a ``signed_request`` the way Meta does (adds ``algorithm`` if missing)."""
    body = {"algorithm": SIGNED_REQUEST_ALGORITHM, **payload}
    encoded_payload = _b64url_encode(json.dumps(body, separators=(",", ":")).encode("utf-8"))
    signature = _hmac_sha256(app_secret, encoded_payload.encode("ascii"))
    return f"{_b64url_encode(signature)}.{encoded_payload}"
