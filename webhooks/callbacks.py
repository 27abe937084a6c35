"""Meta's callbacks about people: the deauthorize callback.

Meta posts a ``signed_request`` (form field) when a person removes the app from their Facebook
or Instagram settings. Once verified, every account that person connected is disconnected: the
tokens are deleted and the conversations are kept.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from accounts import onboarding
from integrations.meta.signatures import SignedRequestError, parse_signed_request

logger = logging.getLogger(__name__)


@csrf_exempt  # Meta cannot send a CSRF token; the signed_request is verified instead.
@require_POST
def meta_deauthorize(request: HttpRequest) -> JsonResponse:
    signed_request = request.POST.get("signed_request", "")
    try:
        payload = parse_signed_request(
            signed_request, [settings.META_APP_SECRET, settings.META_INSTAGRAM_APP_SECRET]
        )
    except SignedRequestError as exc:
        logger.warning("deauthorize callback refused: %s", exc.reason)
        return JsonResponse({"error": "invalid signed_request"}, status=400)
    user_id = str(payload.get("user_id") or "")
    count = onboarding.instagram_accounts_deauthorize(meta_user_id=user_id) if user_id else 0
    logger.info("deauthorize callback disconnected %d account(s)", count)
    return JsonResponse({"success": True})
