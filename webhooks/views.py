"""`/webhooks/meta`: Meta's verification handshake and event deliveries.

A delivery is verified over its raw bytes, stored in one INSERT and acknowledged. Nothing here
parses the body, looks up a tenant, calls Meta or publishes to the broker: the stored event is
the outbox, and the relay moves it on. Only a database that cannot store answers 5xx (503, so
Meta retries); a signed body we cannot make sense of is still stored, and quarantined later.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from config.input_guard import is_digits, parse_digits
from integrations.meta.signatures import SIGNATURE_HEADER, verify_hub_signature
from webhooks import services
from webhooks.metrics import count

logger = logging.getLogger(__name__)

MAX_CHALLENGE_LENGTH = 256


# While the database is down every delivery fails the same way. Formatting a traceback costs
# more than the rest of the 503 (W9 drill: it doubled the time to answer), so each process logs
# one in full per interval and a single line for the others.
STORE_FAILURE_TRACEBACK_INTERVAL = 60.0
_last_store_traceback = -STORE_FAILURE_TRACEBACK_INTERVAL


def _log_store_failure(exc: DatabaseError) -> None:
    global _last_store_traceback
    now = time.monotonic()
    if now - _last_store_traceback >= STORE_FAILURE_TRACEBACK_INTERVAL:
        _last_store_traceback = now
        logger.error("webhook could not be stored; answering 503 so Meta retries", exc_info=exc)
    else:
        logger.error(
            "webhook could not be stored (%s); answering 503 so Meta retries", type(exc).__name__
        )


def _plain(body: str, status: int = 200) -> HttpResponse:
    return HttpResponse(body, status=status, content_type="text/plain; charset=utf-8")


def _verify_subscription(request: HttpRequest) -> HttpResponse:
    mode = request.GET.get("hub.mode", "")
    token = request.GET.get("hub.verify_token", "")
    challenge = request.GET.get("hub.challenge", "")
    expected = settings.META_WEBHOOK_VERIFY_TOKEN
    if mode != "subscribe" or not expected or not constant_time_compare(token, expected):
        count("webhook.verify_refused")
        return _plain("Verification refused.", status=403)
    if not challenge or len(challenge) > MAX_CHALLENGE_LENGTH:
        return _plain("The challenge is missing or too long.", status=400)
    return _plain(challenge)


def _read_body(request: HttpRequest, limit: int) -> bytes | None:
    """The raw body, or None once it grows past ``limit`` (never buffered beyond it)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = request.read(min(65536, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return None


@csrf_exempt  # Meta cannot send a CSRF token; every POST is verified by its signature instead.
@require_http_methods(["GET", "POST"])
def meta_webhook(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _verify_subscription(request)

    limit = settings.WEBHOOK_MAX_BODY_BYTES
    declared = request.META.get("CONTENT_LENGTH") or ""
    length = parse_digits(declared)  # None for digits too many to read: more than any limit
    if is_digits(declared) and (length is None or length > limit):
        count("webhook.too_large")
        return _plain("The body is too large.", status=413)
    raw_body = _read_body(request, limit)
    if raw_body is None:
        count("webhook.too_large")
        return _plain("The body is too large.", status=413)

    header = request.headers.get(SIGNATURE_HEADER)
    if verify_hub_signature(raw_body, header, [settings.META_APP_SECRET]):
        signed_with = "meta"
    elif verify_hub_signature(raw_body, header, [settings.META_INSTAGRAM_APP_SECRET]):
        signed_with = "instagram"
    else:
        count("webhook.bad_signature")
        logger.warning("webhook refused: bad or missing signature (%d bytes)", len(raw_body))
        return _plain("Invalid signature.", status=403)

    try:
        stored = services.webhook_event_store(raw_body=raw_body, signed_with=signed_with)
    except DatabaseError as exc:
        count("webhook.store_failed")
        _log_store_failure(exc)
        response = _plain("Temporarily unavailable.", status=503)
        response["Retry-After"] = "5"
        return response
    count("webhook.stored" if stored else "webhook.duplicate")
    return _plain("EVENT_RECEIVED")
