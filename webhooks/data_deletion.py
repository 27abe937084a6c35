"""Meta's data deletion request callback: ``POST /webhooks/meta/data-deletion``.

Meta posts a ``signed_request`` (form field) when a person removes the app and asks for their
data to be deleted. A request that is not signed with one of our app secrets, or that was
issued too long ago, is refused with 400 and changes nothing. A valid one is recorded (a repeat
for the same person answers with the same code) and the erasure is queued; the answer is the
confirmation code and the public page where the person follows the erasure.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from accounts import compliance
from config.input_guard import is_digits
from integrations.meta.signatures import SignedRequestError, parse_signed_request

logger = logging.getLogger(__name__)

# Meta's clock and ours may differ a little: an issue time this far ahead is still believed.
CLOCK_SKEW_SECONDS = 300


def _refused(reason: str) -> JsonResponse:
    logger.warning("data deletion callback refused: %s", reason)
    return JsonResponse({"error": "invalid signed_request"}, status=400)


def _verified(signed_request: str) -> tuple[dict[str, object], str]:
    """The payload and which app signed it ("meta" or "instagram")."""
    last_error: SignedRequestError | None = None
    for source, secret in (
        ("meta", settings.META_APP_SECRET),
        ("instagram", settings.META_INSTAGRAM_APP_SECRET),
    ):
        if not secret:
            continue
        try:
            return parse_signed_request(signed_request, secret), source
        except SignedRequestError as exc:
            last_error = exc
            if exc.reason != "bad_signature":
                break
    raise last_error or SignedRequestError("no_secret")


@csrf_exempt  # Meta cannot send a CSRF token; the signed_request is verified instead.
@require_POST
def meta_data_deletion(request: HttpRequest) -> JsonResponse:
    try:
        payload, source = _verified(request.POST.get("signed_request", ""))
    except SignedRequestError as exc:
        return _refused(exc.reason)
    issued_at = payload.get("issued_at")
    if not isinstance(issued_at, int) or isinstance(issued_at, bool):
        return _refused("no issued_at")
    age = time.time() - issued_at
    if age > settings.DATA_DELETION_MAX_AGE_SECONDS or age < -CLOCK_SKEW_SECONDS:
        return _refused("stale")
    user_id = payload.get("user_id")
    if not isinstance(user_id, str | int) or isinstance(user_id, bool) or not str(user_id):
        return _refused("no user_id")
    user_id = str(user_id).strip()
    if len(user_id) > 64 or not is_digits(user_id):
        return _refused("malformed user_id")
    deletion, created = compliance.data_deletion_request_record(meta_user_id=user_id, source=source)
    logger.info("data deletion request %s %s", deletion.pk, "recorded" if created else "repeated")
    code = deletion.confirmation_code
    url = settings.SITE_URL.rstrip("/") + reverse("frontend:data_deletion_status", args=[code])
    return JsonResponse({"url": url, "confirmation_code": code})
